"""LanceDB embedding store: one table per (dataset, encoder). The only module that touches LanceDB."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.data.record import METADATA_COLUMNS
from bench import identity, table_state
from bench.errors import BenchError, DamagedTableError, DuplicateRowsError, FingerprintMismatchError, MissingEmbeddingsError
from bench.table_state import table_name
from bench.vectors import SplitVectors

T = TypeVar("T")
KEY_COLUMNS = ("image_id", "split", "processing")
MADE_FROM_COLUMNS = ("op_version", "source_stamp")  # a row whose values differ from the wanted ones is extracted again
FINGERPRINT_KEY = b"bench.fingerprint"
TABLE_ID_KEY = b"bench.table_id"  # a fresh id per table creation: a rebuilt table is never taken for the old one
STORAGE_OPTIONS = {"new_table_data_storage_version": "2.0"}  # 2-5x faster for float vectors


class StorageError(BenchError):
    """The store's URI cannot be used: an unknown scheme, a file, an endpoint that does not answer,
    refused credentials, a missing bucket."""


PLAIN_WORDS = (  # (what the storage engine says, what it means), first match wins
    ("status: 403", "access refused: check the credentials"),
    ("status: 404", "not found: does the bucket exist?"),
    ("No object store provider found for scheme", "an unknown URI scheme"),
    ("File exists", "a file where the store's folder should be"),
    ("RetryError", "no answer from the endpoint"),
    ("was not found", "its folder is there but holds no readable version (is _versions/ missing?)"),
)


def _reason(error: Exception) -> str:
    """The storage engine's message, said in plain words where it is a known case, without its
    source locations, on one short line."""
    text = " ".join(str(error).split())
    for marker in (", /", " /rustc/", " /home/", " /root/"):
        text = text.split(marker)[0]
    plain = next((meaning for said, meaning in PLAIN_WORDS if said in text), "")
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{plain}: {text}" if plain else text


def _engine_failure(error: Exception) -> bool:
    """Whether an exception is the storage engine failing to read or write (not a rejected filter)."""
    text = str(error)
    failed = any(said in text for said in ("LanceError", "lance error", "External error", "was not found"))  # listed, yet unopenable
    return failed and "Invalid user input" not in text


def _table_io(method: Callable[..., T]) -> Callable[..., T]:
    """A Store method on one (dataset, encoder) table whose storage failures become one
    `DamagedTableError` naming the table and why it cannot be read."""

    @functools.wraps(method)
    def guarded(self: "Store", dataset: str, encoder: str, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, dataset, encoder, *args, **kwargs)
        except (RuntimeError, OSError, ValueError) as error:
            if not _engine_failure(error):
                raise
            raise DamagedTableError(dataset, encoder, f"table {table_name(dataset, encoder)!r} in {self.uri} cannot be read ({_reason(error)})") from None

    return guarded


def schema(dim: int, fingerprint: dict[str, Any], table_id: str = "") -> pa.Schema:
    fields = [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("processing", pa.string(), nullable=False),
        pa.field("group", pa.string()),
        pa.field("op_version", pa.int32()),
        pa.field("source_stamp", pa.string()),
        pa.field("label", pa.int64()),
        pa.field("label_name", pa.string()),
        *(pa.field(name, pa.type_for_alias(kind)) for name, kind in METADATA_COLUMNS.items()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ]
    return pa.schema(fields, metadata={FINGERPRINT_KEY: json.dumps(fingerprint, sort_keys=True).encode(), TABLE_ID_KEY: table_id.encode()})


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
LOCK_FOLDER = ".locks"


@dataclass(frozen=True)
class KeyState:
    """What a table held at one version: its rows' `item_keys`, and their merge keys (a row made
    from another op version or source stamp is replaced, not added)."""

    version: int | None  # None: no table
    keys: pa.Array | pa.ChunkedArray
    merge_keys: pa.Array | pa.ChunkedArray

    def contains(self, keys: pa.Array) -> np.ndarray:
        if len(self.keys) == 0:
            return np.zeros(len(keys), dtype=bool)
        return pc.is_in(keys, value_set=pc.unique(self.keys)).to_numpy(zero_copy_only=False)

    def duplicates(self) -> int:
        return len(self.merge_keys) - len(pc.unique(self.merge_keys))


VECTOR_INDEX = "vector_idx"
INDEX_NPROBES = 64  # IVF partitions searched per query
INDEX_REFINE = 100  # candidates re-scored with the full vectors, per result asked (recall@10 0.94 at 50, 1.0 at 100 on 1M rows)


@dataclass(frozen=True)
class VectorIndexState:
    kind: str
    indexed_rows: int
    unindexed_rows: int  # rows added since the index was built (searched exactly, slower)


@dataclass(frozen=True)
class FragmentWriter:
    """Writes rows as uncommitted Lance fragments of one table; runs in any process."""

    uri: str
    schema: pa.Schema

    def write(self, rows: pa.Table) -> bytes:
        """The fragments' metadata, pickled for the committing process."""
        import pickle

        from lance.fragment import write_fragments

        return pickle.dumps(write_fragments(rows.cast(self.schema), self.uri, schema=self.schema, data_storage_version="2.0"))


@dataclass(frozen=True)
class Written:
    version: int  # the table's version after the write
    appended: bool  # False: merged on the key, because another writer had committed since `since`


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    return (values[start:start + size] for start in range(0, len(values), size))


def _in_filter(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"{column} IN ({quoted})"


def _joined(*columns) -> pa.Array:
    """Columns (Arrow arrays or Python sequences of strings or ints) joined row by row into one string."""
    texts = [pc.cast(values, pa.string()) if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array([str(v) for v in values], pa.string())
             for values in columns]
    return pc.binary_join_element_wise(*texts, KEY_SEPARATOR)


def item_keys(image_ids, splits, processings, versions, stamps) -> pa.Array:
    """One string per row that identifies what it holds: (image_id, split, processing) and what the
    vector was made from (the op version, the source stamp)."""
    return _joined(image_ids, splits, processings, versions, stamps)


def merge_keys(image_ids, splits, processings) -> pa.Array:
    """The key a write merges on: a row of another op version or source stamp is replaced, not added."""
    return _joined(image_ids, splits, processings)


def vector_matrix(table: pa.Table) -> np.ndarray:
    """The `vector` column of scanned rows as a (rows, dim) float32 matrix."""
    flat = table.column("vector").combine_chunks()
    return flat.values.to_numpy(zero_copy_only=False).reshape(len(flat), -1)


class Store:
    """Embedding tables under one LanceDB URI (a folder, or any URI LanceDB accepts)."""

    def __init__(self, uri: str | Path):
        self.uri = str(uri)
        self._db = None

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "_db": None}  # a connection stays in its process; another one opens its own

    @property
    def db(self):
        if self._db is None:
            import lancedb

            try:
                self._db = lancedb.connect(self.uri)
            except (RuntimeError, OSError, ValueError) as error:
                raise self._unusable(error) from None
        return self._db

    def _unusable(self, error: Exception) -> StorageError:
        return StorageError(
            f"the embedding store {self.uri} cannot be used ({_reason(error)}). Set BENCH_EMBEDDINGS_URI (or --home) to a folder, "
            "or to an object-storage URI such as s3://bucket/prefix whose bucket exists, with AWS_ENDPOINT_URL for a non-AWS server "
            "and credentials it accepts (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        )

    def _local(self) -> Path | None:
        """The store's folder, for a store on this machine's disk."""
        return table_state.local_folder(self.uri)

    def table_names(self) -> list[str]:
        folder = self._local()
        if folder is not None and not folder.exists():
            return []  # nothing written yet: do not create the folder just to look
        try:
            return sorted(self.db.list_tables().tables)
        except (RuntimeError, OSError, ValueError) as error:
            raise self._unusable(error) from None

    def _open(self, name: str):
        table = self.db.open_table(name)
        table.checkout_latest()
        return table

    def has_table(self, dataset: str, encoder: str) -> bool:
        return table_name(dataset, encoder) in self.table_names()

    @_table_io
    def fingerprint(self, dataset: str, encoder: str) -> dict[str, Any]:
        metadata = self._open(table_name(dataset, encoder)).schema.metadata or {}
        return json.loads(metadata.get(FINGERPRINT_KEY, b"{}"))

    @_table_io
    def table_id(self, dataset: str, encoder: str) -> str | None:
        """The id the table was created with (None: no such table); a rebuilt table has a new one.
        Read from LanceDB, and recorded for bench.table_state, whose record answers without it."""
        if not self.has_table(dataset, encoder):
            return None
        return self._record(table_name(dataset, encoder)).table_id

    def _record(self, name: str, table: Any = None) -> table_state.TableState:
        """The table's id, version and fingerprint as LanceDB has them now, recorded beside the
        table for bench.table_state where no commit landed while they were read."""
        folder = self._local()
        before = table_state.manifests(folder, name) if folder is not None else None
        if table is None:
            table = self._open(name)
        else:
            table.checkout_latest()
        metadata = table.schema.metadata or {}
        state = table_state.TableState(metadata.get(TABLE_ID_KEY, b"").decode() or None, int(table.version),
                                       json.loads(metadata.get(FINGERPRINT_KEY, b"{}")))
        if folder is not None and before is not None and table_state.manifests(folder, name) == before:
            table_state.remember(self.uri, name, state, before)
        return state

    @_table_io
    def prepare(self, dataset: str, encoder: str, dim: int, fingerprint: dict[str, Any]) -> pa.Schema:
        """Create the table, or check that the existing one was extracted the same way."""
        import uuid

        name = table_name(dataset, encoder)
        wanted = schema(dim, json.loads(json.dumps(fingerprint, sort_keys=True)), uuid.uuid4().hex)
        with self.lock(dataset, encoder):  # one creator: the table's id is the one it was made with
            if name not in self.table_names():
                self.db.create_table(name, schema=wanted, storage_options=STORAGE_OPTIONS)
        self.check_fingerprint(dataset, encoder, fingerprint)
        table = self._open(name)
        self._record(name, table)
        return table.schema

    @_table_io
    def check_fingerprint(self, dataset: str, encoder: str, fingerprint: dict[str, Any], *, sharing: int = 1) -> None:
        """Refuse, with the differing fields, a table extracted differently. `sharing`: the encoders
        the command works on (the fix rebuilds this one, then runs the command again)."""
        name = table_name(dataset, encoder)
        fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))  # tuples -> lists, as stored
        existing = self.fingerprint(dataset, encoder)
        if existing != fingerprint:
            details = "; ".join(identity.differences(existing, fingerprint))
            raise FingerprintMismatchError(
                dataset, encoder, f"table {name!r} in {self.uri} holds vectors extracted differently ({details}). Refusing to mix them",
                sharing=sharing,
            )

    def drop(self, dataset: str, encoder: str) -> None:
        name = table_name(dataset, encoder)
        with self.lock(dataset, encoder):
            if name in self.table_names():
                self.db.drop_table(name)
            table_state.forget(self.uri, name)

    def lock(self, dataset: str, encoder: str):
        """The table's writer lock: every bench process that writes a table (upserts, repairs,
        compaction, drop) holds it, so concurrent runs on one store never interleave commits.
        A file lock (the `filelock` package) beside the tables, or, for object storage, in this
        machine's cache folder."""
        from filelock import FileLock

        return FileLock(str(self._lock_folder() / f"{table_name(dataset, encoder)}.lock"))

    def _lock_folder(self) -> Path:
        local = self._local()
        if local is None:
            import hashlib

            folder = Path.home() / ".cache" / "bench" / "locks" / hashlib.blake2b(self.uri.encode(), digest_size=8).hexdigest()
        else:
            folder = local / LOCK_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @_table_io
    def key_state(self, dataset: str, encoder: str) -> KeyState:
        """The table's version and the keys of every row stored at that version."""
        if not self.has_table(dataset, encoder):
            return KeyState(None, pa.array([], pa.string()), pa.array([], pa.string()))
        table = self._open(table_name(dataset, encoder))
        version = int(table.version)
        found = table.to_lance().to_table(columns=[*KEY_COLUMNS, *MADE_FROM_COLUMNS])
        columns = [found.column(name) for name in KEY_COLUMNS]
        return KeyState(version, item_keys(*columns, *(found.column(name) for name in MADE_FROM_COLUMNS)), merge_keys(*columns))

    @_table_io
    def write(self, dataset: str, encoder: str, batch: pa.Table, since: int | None = None) -> Written:
        """Idempotent upsert keyed by (image_id, split, processing): a rerun never duplicates.

        `since`: the table's version when the caller learnt which keys it holds (its plan, or its
        own last write). If the table is still at that version, nobody else has written since, the
        batch's keys are known to be new, and it is appended: a commit then costs the same
        whatever the table's size. Otherwise the batch is merged on the key. Both run under the
        table's writer lock."""
        with self.lock(dataset, encoder):
            table = self._open(table_name(dataset, encoder))
            appended = since is not None and int(table.version) == since
            if appended:
                table.add(batch)
            else:
                table.merge_insert(list(KEY_COLUMNS)).when_matched_update_all().when_not_matched_insert_all().execute(batch)
            table.checkout_latest()
            self._record(table_name(dataset, encoder), table)
            return Written(int(table.version), appended)

    @_table_io
    def repair_duplicates(self, dataset: str, encoder: str) -> int:
        """Keep one row per key where a table holds several (left by writers that did not share
        the lock, or by an older bench); returns how many rows were removed."""
        with self.lock(dataset, encoder):
            table = self._open(table_name(dataset, encoder))
            keys = self.key_state(dataset, encoder).merge_keys
            counts = pc.value_counts(keys)
            repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
            if len(repeated) == 0:
                return 0
            ids = sorted({key.split(KEY_SEPARATOR)[0] for key in repeated.to_pylist()})
            rows = pa.concat_tables(
                table.to_lance().to_table(filter=_in_filter("image_id", part)) for part in _chunks(ids, 500)
            )
            keys_read = merge_keys(*(rows.column(name) for name in KEY_COLUMNS))
            first = np.unique(keys_read.to_numpy(zero_copy_only=False), return_index=True)[1]
            kept = rows.take(pa.array(np.sort(first)))
            for part in _chunks(ids, 500):
                table.delete(_in_filter("image_id", part))
            table.add(kept)
            return rows.num_rows - kept.num_rows

    @_table_io
    def build_vector_index(self, dataset: str, encoder: str, partitions: int | None = None) -> None:
        """LanceDB's IVF-PQ index on the vector column (cosine), replacing any older one. It lives
        in the table itself, wherever the table is (a folder or object storage)."""
        from lancedb.index import IvfPq

        with self.lock(dataset, encoder):
            table = self._open(table_name(dataset, encoder))
            table.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=partitions), replace=True, name=VECTOR_INDEX)

    @_table_io
    def vector_index(self, dataset: str, encoder: str) -> VectorIndexState | None:
        """The table's vector index and how many rows it does not cover, or None."""
        table = self._open(table_name(dataset, encoder))
        if not any(index.name == VECTOR_INDEX for index in table.list_indices()):
            return None
        stats = table.index_stats(VECTOR_INDEX)
        return VectorIndexState(str(stats.index_type), int(stats.num_indexed_rows), int(stats.num_unindexed_rows))

    @_table_io
    def nearest_approximate(
        self, dataset: str, encoder: str, vector: np.ndarray, k: int, where: str | None = None, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Up to k rows nearest to `vector` by the table's vector index (approximate; rows the index
        does not cover are searched exactly), best first, with their cosine `score`."""
        table = self._open(table_name(dataset, encoder))
        search = table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector").distance_type("cosine")
        search = search.nprobes(INDEX_NPROBES).refine_factor(INDEX_REFINE).limit(k)
        if where:
            search = search.where(where, prefilter=True)
        if columns:
            search = search.select([*columns, "_distance"])
        found = search.to_arrow()
        scores = pc.subtract(pa.scalar(1.0, pa.float32()), pc.cast(found.column("_distance"), pa.float32()))
        return found.drop_columns(["_distance"]).append_column("score", scores)

    @_table_io
    def fragment_writer(self, dataset: str, encoder: str) -> "FragmentWriter":
        """A picklable writer that other processes (e.g. Ray workers) use to write rows as Lance
        fragments of the table, for `commit_fragments` to add to it."""
        table = self._open(table_name(dataset, encoder))
        return FragmentWriter(table.to_lance().uri, table.schema)

    @_table_io
    def commit_fragments(self, dataset: str, encoder: str, written: Sequence[bytes], since: int | None) -> Written:
        """Add fragments written by `FragmentWriter`s to the table in one commit, under its lock.
        If another writer has committed since `since`, keys the fragments share with its rows are
        then stored twice, and are repaired at once, so the table holds every key once."""
        import pickle

        import lance

        fragments = [fragment for payload in written for fragment in pickle.loads(payload)]
        with self.lock(dataset, encoder):
            table = self._open(table_name(dataset, encoder))
            version = int(table.version)
            if fragments:
                lance.LanceDataset.commit(table.to_lance().uri, lance.LanceOperation.Append(fragments), read_version=version)
            alone = since is not None and version == since
        if fragments and not alone:
            self.repair_duplicates(dataset, encoder)
        return Written(self._record(table_name(dataset, encoder)).version, alone)

    @_table_io
    def compact(self, dataset: str, encoder: str) -> None:
        """Merge the small fragments left by incremental writes."""
        with self.lock(dataset, encoder):
            self._open(table_name(dataset, encoder)).optimize()

    @_table_io
    def version(self, dataset: str, encoder: str) -> int:
        return int(self._open(table_name(dataset, encoder)).version)

    @_table_io
    def count(self, dataset: str, encoder: str) -> int:
        return self._open(table_name(dataset, encoder)).count_rows()

    @_table_io
    def scan(
        self, dataset: str, encoder: str, where: str | None = None, columns: Iterable[str] | None = None, limit: int | None = None
    ) -> pa.Table:
        """Rows matching a SQL filter (LanceDB syntax) as an Arrow table; a bad filter raises ValueError."""
        table = self._open(table_name(dataset, encoder))
        return table.to_lance().to_table(filter=where, columns=list(columns) if columns else None, limit=limit)

    @_table_io
    def columns(self, dataset: str, encoder: str) -> list[str]:
        return list(self._open(table_name(dataset, encoder)).schema.names)

    @_table_io
    def split_vectors(self, dataset: str, encoder: str, split: str, processings: Sequence[str]) -> SplitVectors:
        """Vectors of `split` under each processing, aligned row for row by image_id.

        Each processing is one filtered scan; its vectors are written once, in image_id order,
        straight from the scanned Arrow buffers into the result (no intermediate copy)."""
        if not self.has_table(dataset, encoder):
            raise MissingEmbeddingsError(dataset, encoder, f"no embeddings for {dataset} x {encoder}", absent=True)
        image_ids: pa.Array | None = None
        labels: np.ndarray | None = None
        vectors: dict[str, np.ndarray] = {}
        for processing in processings:
            found = self.scan(
                dataset, encoder, where=f"split = '{split}' AND processing = '{processing}'", columns=["image_id", "label", "vector"]
            )
            if found.num_rows == 0:
                raise MissingEmbeddingsError(dataset, encoder, f"{dataset} x {encoder}: no {split!r} rows under {processing!r}")
            order = pc.sort_indices(found.column("image_id")).to_numpy()
            ids = found.column("image_id").take(order).combine_chunks()
            _refuse_duplicates(ids, dataset, encoder, split, processing)
            if image_ids is None:
                image_ids = ids
                labels = np.array(found.column("label").take(order).to_numpy(), dtype=np.int64)  # writable: callers hand it to torch
            elif not ids.equals(image_ids):
                raise MissingEmbeddingsError(
                    dataset, encoder, f"{dataset} x {encoder}: split {split!r} under {processing!r} has {len(ids)} rows "
                    f"but {processings[0]!r} has {len(image_ids)}; rerun extraction to fill the gaps"
                )
            vectors[processing] = _ordered_matrix(found.column("vector"), order)
            del found
            pa.default_memory_pool().release_unused()  # hand the scan's buffers back before the next one
        assert image_ids is not None and labels is not None
        return SplitVectors(image_ids=np.asarray(image_ids.to_numpy(zero_copy_only=False), dtype=str), labels=labels, vectors=vectors)


def _ordered_matrix(column: pa.ChunkedArray, order: np.ndarray) -> np.ndarray:
    """Rows `order` of a fixed-size-list column as one (rows, dim) float32 matrix, copied once."""
    dim = column.type.list_size
    out = np.empty((len(order), dim), dtype=np.float32)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))  # scanned row -> its place in the result
    offset = 0
    for chunk in column.chunks:
        values = chunk.values.slice(chunk.offset * dim, len(chunk) * dim)
        out[rank[offset:offset + len(chunk)]] = values.to_numpy(zero_copy_only=True).reshape(len(chunk), dim)
        offset += len(chunk)
    return out


def _refuse_duplicates(sorted_ids: pa.Array, dataset: str, encoder: str, split: str, processing: str) -> None:
    if len(sorted_ids) < 2:
        return
    same = pc.equal(sorted_ids[1:], sorted_ids[:-1])
    if pc.any(same).as_py():
        repeated = pc.unique(sorted_ids[1:].filter(same))
        raise DuplicateRowsError(
            dataset, encoder, f"{dataset} x {encoder}: {len(repeated)} image(s) stored more than once under {split!r}/{processing!r} "
            f"(e.g. {repeated[0].as_py()!r})"
        )
