"""`bench query`: rows of an embedding table by metadata filter, or nearest neighbours of an image."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from bench import index
from bench.errors import BenchError
from bench.store import MissingEmbeddingsError, Store, vector_matrix
from bench.vectors import normalise


class QueryError(BenchError, ValueError):
    """A query that cannot run as written; the message says why and what is valid."""


def _check(store: Store, dataset: str, encoder: str, columns: Sequence[str] | None) -> list[str]:
    if not store.has_table(dataset, encoder):
        raise MissingEmbeddingsError(
            f"no table for {dataset} x {encoder} in {store.uri}; tables here: {', '.join(store.table_names()) or 'none'}. "
            f"Extract first: python -m bench extract --dataset {dataset} --encoder {encoder}"
        )
    valid = store.columns(dataset, encoder)
    unknown = [column for column in columns or () if column not in valid]
    if unknown:
        raise QueryError(f"unknown column(s) {', '.join(unknown)}; valid columns: {', '.join(valid)}")
    return valid


def _scan(store: Store, dataset: str, encoder: str, where: str | None, columns: list[str], limit: int | None) -> pa.Table:
    try:
        return store.scan(dataset, encoder, where=where, columns=columns, limit=limit)
    except ValueError as error:
        reason = str(error).split(", /")[0]  # drop the engine's source location
        valid = ", ".join(store.columns(dataset, encoder))
        raise QueryError(f"--where {where!r} was rejected: {reason}. Valid columns: {valid}") from None


def select(store: Store, dataset: str, encoder: str, where: str | None, columns: Sequence[str] | None = None, limit: int | None = None) -> pa.Table:
    """Rows matching `where` (SQL, LanceDB syntax); all columns but the vector unless named."""
    valid = _check(store, dataset, encoder, columns)
    chosen = list(columns) if columns else [column for column in valid if column != "vector"]
    return _scan(store, dataset, encoder, where, chosen, limit)


def embed_image(encoder: str, path: Path, store: Store, dataset: str) -> np.ndarray:
    """The image's embedding under the encoder that made the table (checked by fingerprint),
    decoded and prepared by extraction's own stages, as the file is (processing `original`)."""
    from bench import encoders, processing
    from bench.data import ImageRecord
    from bench.extraction.embed import Embedder
    from bench.extraction.fingerprint import fingerprint
    from bench.extraction.prepare import DECODE_ERRORS, prepare, view_of
    from bench.runtime import pick_device

    spec = encoders.get(encoder)
    stored = store.fingerprint(dataset, encoder)
    store.check_fingerprint(dataset, encoder, fingerprint(spec, stored.get("processing_seed", 0), stored.get("precision", "fp32")))
    record = ImageRecord(image_id=str(path), split="query", label=-1, label_name="", path=str(path))
    view = view_of(spec)
    try:
        pixels = prepare(record, processing.get("original"), [view], seed=0)[view]
    except DECODE_ERRORS as error:
        raise QueryError(f"--like {path}: cannot read the image ({type(error).__name__}: {error})") from None
    embedder = Embedder(encoders.load(spec), pick_device("auto"), stored.get("precision", "fp32"))
    return embedder(pixels[None])[0]


def like(
    store: Store, dataset: str, encoder: str, image: Path, k: int, where: str | None = None,
    columns: Sequence[str] | None = None, backend: str = "auto",
) -> pa.Table:
    """The k rows (under the filter) nearest to an image, best first, with their cosine `score`."""
    valid = _check(store, dataset, encoder, columns)
    chosen = list(columns) if columns else [column for column in valid if column != "vector"]
    candidates = _scan(store, dataset, encoder, where, [*chosen, "vector"] if "vector" not in chosen else chosen, None)
    if candidates.num_rows == 0:
        return candidates.select(chosen).append_column("score", pa.array([], pa.float32()))
    query = embed_image(encoder, image, store, dataset)
    matrix = vector_matrix(candidates)
    found = index.search(normalise(query[None]), normalise(matrix), min(k, len(matrix)), backend=backend)
    rows = found.rows[0][found.rows[0] >= 0]
    return candidates.select(chosen).take(pa.array(rows)).append_column("score", pa.array(found.scores[0][: len(rows)]))
