"""Vectors as tasks receive them, and the helpers search, tasks and probes share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMALISE_ROWS = 16_384  # rows normalised at a time in place: the temporaries stay small


@dataclass(frozen=True)
class SplitVectors:
    """Embeddings of one split under several processings, rows aligned by image_id."""

    image_ids: np.ndarray  # (N,) str, sorted
    labels: np.ndarray  # (N,) int64
    vectors: dict[str, np.ndarray]  # processing -> (N, dim) float32


def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised float32 copy, row by row (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def normalise_in_place(vectors: np.ndarray) -> np.ndarray:
    """`normalise`, bit for bit, written over a writable float32 C-contiguous matrix
    instead of into a new one (any other array gets the normalised copy)."""
    if not (isinstance(vectors, np.ndarray) and vectors.dtype == np.float32 and vectors.ndim == 2
            and vectors.flags.c_contiguous and vectors.flags.writeable):
        return normalise(vectors)
    for start in range(0, len(vectors), NORMALISE_ROWS):
        part = vectors[start:start + NORMALISE_ROWS]
        norms = np.linalg.norm(part, axis=-1, keepdims=True)
        np.divide(part, np.maximum(norms, np.finfo(np.float32).tiny), out=part)
    return vectors
