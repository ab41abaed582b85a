"""`bench query`: rows of an embedding table by metadata filter, or nearest neighbours of an image."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from bench import index
from bench.store import MissingEmbeddingsError, Store, vector_matrix


class QueryError(ValueError):
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
    """The image's embedding under the encoder that made the table (checked by fingerprint)."""
    from PIL import Image, UnidentifiedImageError

    from bench import encoders
    from bench.extraction import embed, fingerprint, pick_device

    spec = encoders.get(encoder)
    loaded = encoders.load(spec)
    seed = store.fingerprint(dataset, encoder).get("processing_seed", 0)
    store.prepare(dataset, encoder, spec.embed_dim, fingerprint(spec, loaded.preprocess, seed))  # refuses a mismatch
    try:
        with Image.open(path) as handle:
            image = handle.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise QueryError(f"--like {path}: cannot read the image ({error})") from None
    device = pick_device("auto")
    return embed(loaded.model.to(device), loaded.preprocess(image)[None], device)[0]


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
    found = index.search(index.normalise(query[None]), index.normalise(matrix), min(k, len(matrix)), backend=backend)
    rows = found.rows[0][found.rows[0] >= 0]
    return candidates.select(chosen).take(pa.array(rows)).append_column("score", pa.array(found.scores[0][: len(rows)]))
