"""The commit stage: rows and vectors into an encoder's table, idempotently, every few seconds."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from bench import processing
from bench.data import ImageRecord
from bench.store import Store, rows_to_arrow

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


class Committer:
    """Buffers one encoder's rows and upserts them (keyed by image_id, split, processing) when
    `commit_seconds` have passed or `COMMIT_ROWS` rows wait, so an interruption loses only the
    rows since the last commit and a rerun never duplicates.

    `since` is the table version the plan saw: while no other writer commits to the table, the
    rows are known to be new and are appended; once another writer is seen, every later commit
    merges on the key (see `Store.write`)."""

    def __init__(self, store: Store, dataset: str, encoder: str, table_schema: pa.Schema, commit_seconds: float,
                 since: int | None = None):
        self.store, self.dataset, self.encoder = store, dataset, encoder
        self.schema = table_schema
        self.commit_seconds = commit_seconds
        self.since = since
        self.rows: list[dict[str, Any]] = []
        self.vectors: list[np.ndarray] = []
        self.last = time.monotonic()
        self.written = 0
        self.commits = 0

    def add(self, rows: Sequence[dict[str, Any]], vectors: np.ndarray) -> None:
        self.rows.extend(rows)
        self.vectors.append(vectors)
        if len(self.rows) >= COMMIT_ROWS or time.monotonic() - self.last >= self.commit_seconds:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            written = self.store.write(self.dataset, self.encoder, rows_to_arrow(self.rows, np.concatenate(self.vectors), self.schema),
                                       since=self.since)
            self.since = written.version if written.appended else None
            self.written += len(self.rows)
            self.commits += 1
            self.rows, self.vectors = [], []
        self.last = time.monotonic()

    def close(self) -> None:
        """Commit what is left; merge the small fragments if there were several commits."""
        self.flush()
        if self.commits > 1:
            self.store.compact(self.dataset, self.encoder)
