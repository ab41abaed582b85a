"""LanceDB embedding store: one table per (dataset, encoder). The only module that touches LanceDB."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.data.record import METADATA_COLUMNS
from bench.errors import BenchError
from bench.naming import encoder_slug, safe_part

KEY_COLUMNS = ("image_id", "split", "processing")
FINGERPRINT_KEY = b"bench.fingerprint"
STORAGE_OPTIONS = {"new_table_data_storage_version": "2.0"}  # 2-5x faster for float vectors


class FingerprintMismatchError(BenchError, RuntimeError):
    """A table holds vectors extracted differently from what is being asked now."""


class MissingEmbeddingsError(BenchError, LookupError):
    """Rows a task needs are not in the store yet."""


def table_name(dataset: str, encoder: str) -> str:
    """A LanceDB-safe table name that still reads as dataset + encoder."""
    return safe_part(f"{dataset}__{encoder_slug(encoder)}")


def schema(dim: int, fingerprint: dict[str, Any]) -> pa.Schema:
    fields = [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("processing", pa.string(), nullable=False),
        pa.field("group", pa.string()),
        pa.field("op_version", pa.int32()),
        pa.field("label", pa.int64()),
        pa.field("label_name", pa.string()),
        *(pa.field(name, pa.type_for_alias(kind)) for name, kind in METADATA_COLUMNS.items()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ]
    return pa.schema(fields, metadata={FINGERPRINT_KEY: json.dumps(fingerprint, sort_keys=True).encode()})


def rows_to_arrow(rows: Sequence[dict[str, Any]], vectors: np.ndarray, table_schema: pa.Schema) -> pa.Table:
    """Build an Arrow batch of rows; `vectors` is (len(rows), dim) float32."""
    dim = table_schema.field("vector").type.list_size
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape != (len(rows), dim):
        raise ValueError(f"expected vectors of shape {(len(rows), dim)}, got {vectors.shape}")
    columns = {name: [row.get(name) for row in rows] for name in table_schema.names if name != "vector"}
    arrays = [pa.array(columns[name], type=table_schema.field(name).type) for name in columns]
    arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim))
    return pa.Table.from_arrays(arrays, schema=table_schema)


KEY_SEPARATOR = "\x1f"  # unit separator: never part of an id, a split or a processing name


def item_keys(image_ids: Sequence[str] | pa.Array, splits, processings, versions) -> pa.Array:
    """One string per row that identifies it: (image_id, split, processing, op_version)."""
    columns = [values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.string())
               for values in (image_ids, splits, processings)]
    versions = versions if isinstance(versions, (pa.Array, pa.ChunkedArray)) else pa.array(versions, pa.int32())
    return pc.binary_join_element_wise(*columns, pc.cast(versions, pa.string()), KEY_SEPARATOR)


def vector_matrix(table: pa.Table) -> np.ndarray:
    """The `vector` column of scanned rows as a (rows, dim) float32 matrix."""
    flat = table.column("vector").combine_chunks()
    return flat.values.to_numpy(zero_copy_only=False).reshape(len(flat), -1)


@dataclass(frozen=True)
class SplitVectors:
    """Embeddings of one split under several processings, rows aligned by image_id."""

    image_ids: np.ndarray  # (N,) str, sorted
    labels: np.ndarray  # (N,) int64
    vectors: dict[str, np.ndarray]  # processing -> (N, dim) float32


class Store:
    """Embedding tables under one LanceDB URI (a folder, or any URI LanceDB accepts)."""

    def __init__(self, uri: str | Path):
        self.uri = str(uri)
        self._db = None

    @property
    def db(self):
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(self.uri)
        return self._db

    def table_names(self) -> list[str]:
        return sorted(self.db.list_tables().tables)

    def _open(self, name: str):
        table = self.db.open_table(name)
        table.checkout_latest()
        return table

    def has_table(self, dataset: str, encoder: str) -> bool:
        return table_name(dataset, encoder) in self.table_names()

    def fingerprint(self, dataset: str, encoder: str) -> dict[str, Any]:
        metadata = self._open(table_name(dataset, encoder)).schema.metadata or {}
        return json.loads(metadata.get(FINGERPRINT_KEY, b"{}"))

    def prepare(self, dataset: str, encoder: str, dim: int, fingerprint: dict[str, Any]) -> pa.Schema:
        """Create the table, or check that the existing one was extracted the same way."""
        name = table_name(dataset, encoder)
        wanted = schema(dim, json.loads(json.dumps(fingerprint, sort_keys=True)))
        if name not in self.table_names():
            self.db.create_table(name, schema=wanted, storage_options=STORAGE_OPTIONS, exist_ok=True)
        self.check_fingerprint(dataset, encoder, fingerprint)
        return self._open(name).schema

    def check_fingerprint(self, dataset: str, encoder: str, fingerprint: dict[str, Any]) -> None:
        """Refuse, with the differing fields and the fix, a table extracted differently."""
        name = table_name(dataset, encoder)
        fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))  # tuples -> lists, as stored
        existing = self.fingerprint(dataset, encoder)
        if existing != fingerprint:
            differing = sorted(key for key in set(existing) | set(fingerprint) if existing.get(key) != fingerprint.get(key))
            details = "; ".join(f"{key}: stored {existing.get(key)!r}, now {fingerprint.get(key)!r}" for key in differing)
            raise FingerprintMismatchError(
                f"table {name!r} in {self.uri} holds vectors extracted differently ({details}). "
                f"Refusing to mix them. Rebuild it with `python -m bench extract --dataset {dataset} "
                f"--encoder {encoder} --rebuild`, or use another --home."
            )

    def drop(self, dataset: str, encoder: str) -> None:
        name = table_name(dataset, encoder)
        if name in self.table_names():
            self.db.drop_table(name)

    def stored_keys(self, dataset: str, encoder: str) -> pa.ChunkedArray | pa.Array:
        """`item_keys` of every stored row (an Arrow array: no Python object per row)."""
        if not self.has_table(dataset, encoder):
            return pa.array([], pa.string())
        found = self.scan(dataset, encoder, columns=[*KEY_COLUMNS, "op_version"])
        return item_keys(*(found.column(name) for name in (*KEY_COLUMNS, "op_version")))

    def contains_keys(self, dataset: str, encoder: str, keys: pa.Array) -> np.ndarray:
        """Per key of `keys` (see `item_keys`), whether the table holds that row."""
        stored = self.stored_keys(dataset, encoder)
        if len(stored) == 0:
            return np.zeros(len(keys), dtype=bool)
        return pc.is_in(keys, value_set=pc.unique(stored)).to_numpy(zero_copy_only=False)

    def write(self, dataset: str, encoder: str, batch: pa.Table) -> None:
        """Idempotent upsert keyed by (image_id, split, processing): a rerun never duplicates."""
        table = self._open(table_name(dataset, encoder))
        (
            table.merge_insert(list(KEY_COLUMNS))
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(batch)
        )

    def compact(self, dataset: str, encoder: str) -> None:
        """Merge the small fragments left by incremental writes."""
        self._open(table_name(dataset, encoder)).optimize()

    def version(self, dataset: str, encoder: str) -> int:
        return int(self._open(table_name(dataset, encoder)).version)

    def count(self, dataset: str, encoder: str) -> int:
        return self._open(table_name(dataset, encoder)).count_rows()

    def scan(
        self, dataset: str, encoder: str, where: str | None = None, columns: Iterable[str] | None = None, limit: int | None = None
    ) -> pa.Table:
        """Rows matching a SQL filter (LanceDB syntax) as an Arrow table; a bad filter raises ValueError."""
        table = self._open(table_name(dataset, encoder))
        return table.to_lance().to_table(filter=where, columns=list(columns) if columns else None, limit=limit)

    def columns(self, dataset: str, encoder: str) -> list[str]:
        return list(self._open(table_name(dataset, encoder)).schema.names)

    def split_vectors(self, dataset: str, encoder: str, split: str, processings: Sequence[str]) -> SplitVectors:
        """Vectors of `split` under each processing, aligned row for row by image_id."""
        if not self.has_table(dataset, encoder):
            raise MissingEmbeddingsError(f"no embeddings for {dataset} x {encoder}; run `python -m bench extract` first")
        image_ids: np.ndarray | None = None
        labels: np.ndarray | None = None
        vectors: dict[str, np.ndarray] = {}
        for processing in processings:
            found = self.scan(
                dataset,
                encoder,
                where=f"split = '{split}' AND processing = '{processing}'",
                columns=["image_id", "label", "vector"],
            )
            unsorted_ids = np.asarray(found.column("image_id").to_pylist(), dtype=str)
            order = np.argsort(unsorted_ids, kind="stable")
            ids = unsorted_ids[order]
            if image_ids is None:
                image_ids = ids
                labels = found.column("label").to_numpy()[order]
            elif not np.array_equal(ids, image_ids):
                raise MissingEmbeddingsError(
                    f"{dataset} x {encoder}: split {split!r} under {processing!r} has {len(ids)} rows "
                    f"but {processings[0]!r} has {len(image_ids)}; rerun extraction to fill the gaps"
                )
            if len(ids) == 0:
                raise MissingEmbeddingsError(f"{dataset} x {encoder}: no {split!r} rows under {processing!r}")
            vectors[processing] = vector_matrix(found)[order]
        assert image_ids is not None and labels is not None
        return SplitVectors(image_ids=image_ids, labels=labels, vectors=vectors)
