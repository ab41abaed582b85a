"""The vector index for interactive queries: built on request, measured against exact search,
used by `query --like` while it covers every row. Reported numbers never use it: every task
searches exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench import exact_search
from bench.store import KEY_COLUMNS, Store, merge_keys, vector_matrix
from bench.vectors import normalise


@dataclass(frozen=True)
class IndexReport:
    rows: int
    build_seconds: float
    sample: int  # queries the recall and latency were measured on
    recall_at_10: float  # mean share of the exact top-10 that the index returns
    latency_ms: float  # median time of one indexed query
    latency_p90_ms: float

    def line(self) -> str:
        return (
            f"{self.rows} rows indexed in {self.build_seconds:.1f} s; on {self.sample} sampled rows as queries: "
            f"recall@10 against exact search {self.recall_at_10:.3f}, query latency median {self.latency_ms:.1f} ms "
            f"(90th percentile {self.latency_p90_ms:.1f} ms)"
        )


def build(store: Store, dataset: str, encoder: str, sample: int = 100, seed: int = 0) -> IndexReport:
    """Build the table's index, then compare it with exact search on `sample` of its own rows."""
    started = time.perf_counter()
    store.build_vector_index(dataset, encoder)
    build_seconds = time.perf_counter() - started
    rows = store.scan(dataset, encoder, columns=[*KEY_COLUMNS, "vector"])
    # a row is named by its key alone: a table holds one row per key, and the made-from columns may be empty
    keys = merge_keys(*(rows.column(name) for name in KEY_COLUMNS)).to_numpy(zero_copy_only=False)
    vectors = normalise(vector_matrix(rows))
    del rows
    chosen = np.random.default_rng(seed).choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    exact = exact_search.search(vectors[chosen], vectors, min(10, len(vectors))).rows
    recalls, latencies = [], []
    for query, truth in zip(chosen, exact):
        began = time.perf_counter()
        found = store.nearest_approximate(dataset, encoder, vectors[query], len(truth), columns=list(KEY_COLUMNS))
        latencies.append(1000 * (time.perf_counter() - began))
        got = merge_keys(*(found.column(name) for name in KEY_COLUMNS)).to_pylist()
        recalls.append(len(set(got) & set(keys[truth].tolist())) / len(truth))
    return IndexReport(len(vectors), build_seconds, len(chosen), float(np.mean(recalls)), float(np.median(latencies)),
                       float(np.percentile(latencies, 90)))


@dataclass(frozen=True)
class IndexUse:
    """Whether `query --like` may use the table's index, why (not), and whether building the
    index (again) would let it."""

    usable: bool
    reason: str
    build_helps: bool = False


def usable(store: Store, dataset: str, encoder: str) -> IndexUse:
    """Whether `query --like` may use the index, and why not when it may not."""
    state = store.vector_index(dataset, encoder)
    if state is None:
        return IndexUse(False, "no vector index", build_helps=True)
    if state.unindexed_rows:
        return IndexUse(False, f"the vector index misses {state.unindexed_rows} rows added since it was built", build_helps=True)
    return IndexUse(True, f"{state.kind} vector index over {state.indexed_rows} rows (approximate)")
