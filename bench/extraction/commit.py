"""The commit stage: what a batch yields, and the rows and vectors it puts into an encoder's
table, idempotently, every few seconds. Engines only produce batches; this is the one place that
counts them and commits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from bench import processing
from bench.data import ImageRecord
from bench.store import Store, Written, rows_to_arrow

COMMIT_ROWS = 4096  # a commit at least every this many rows, whatever the clock says


def row(record: ImageRecord, op: processing.Processing) -> dict[str, Any]:
    """The metadata columns of one (record, processing) row."""
    return {
        "image_id": record.image_id,
        "split": record.split,
        "processing": op.name,
        "group": processing.primary_group(op.name),
        "op_version": op.version,
        "source_stamp": record.stamp,
        "label": record.label,
        "label_name": record.label_name,
        **record.metadata(),
    }


@dataclass
class Embedded:
    """One encoder's share of a batch: its rows and vectors, to be committed here, or the Lance
    fragments a worker already wrote for them (`count` rows either way)."""

    count: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    vectors: np.ndarray | None = None
    fragments: list[bytes] = field(default_factory=list)
    forward_seconds: float = 0.0


@dataclass
class BatchOutcome:
    """What an engine reports for one batch of plan items."""

    finished: int  # items done: embedded by every encoder that needed them, or rejected
    problems: list[tuple[int, str, str]]  # (item index, "rejects" | "warnings", message)
    embedded: dict[int, Embedded]  # target position in the plan -> its share


class Committer:
    """Buffers one encoder's rows (or fragments) and commits them (keyed by image_id, split,
    processing) when `commit_seconds` have passed or `COMMIT_ROWS` rows wait, so an interruption
    loses only the rows since the last commit and a rerun never duplicates.

    `since` is the table version the plan saw: while no other writer commits to the table, the
    rows are known to be new and are appended; once another writer is seen, every later commit
    merges on the key (see `Store.write` and `Store.commit_fragments`)."""

    def __init__(self, store: Store, dataset: str, encoder: str, table_schema: pa.Schema, commit_seconds: float,
                 since: int | None = None):
        self.store, self.dataset, self.encoder = store, dataset, encoder
        self.schema = table_schema
        self.commit_seconds = commit_seconds
        self.since = since
        self.rows: list[dict[str, Any]] = []
        self.vectors: list[np.ndarray] = []
        self.fragments: list[bytes] = []
        self.waiting = 0  # rows buffered, as rows or as fragments
        self.last = time.monotonic()
        self.written = 0
        self.pieces = 0  # fragments added to the table: several are merged when the run ends

    def add(self, share: Embedded) -> None:
        if share.vectors is not None:
            self.rows.extend(share.rows)
            self.vectors.append(share.vectors)
        self.fragments.extend(share.fragments)
        self.waiting += share.count
        if self.waiting >= COMMIT_ROWS or time.monotonic() - self.last >= self.commit_seconds:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            batch = rows_to_arrow(self.rows, np.concatenate(self.vectors), self.schema)
            self._committed(self.store.write(self.dataset, self.encoder, batch, since=self.since), 1)
        if self.fragments:
            self._committed(self.store.commit_fragments(self.dataset, self.encoder, self.fragments, self.since), len(self.fragments))
        self.written += self.waiting
        self.rows, self.vectors, self.fragments, self.waiting = [], [], [], 0
        self.last = time.monotonic()

    def _committed(self, written: Written, pieces: int) -> None:
        self.since = written.version if written.appended else None
        self.pieces += pieces

    def close(self) -> None:
        """Commit what is left; merge the small fragments if there were several."""
        self.flush()
        if self.pieces > 1:
            self.store.compact(self.dataset, self.encoder)
