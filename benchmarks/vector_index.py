#!/usr/bin/env python
"""The vector index for interactive queries on a big table: recall@10 against exact search and
query latency, as `python -m bench vector-index build` prints them.

Run from the project root:

    python benchmarks/vector_index.py                  # 1,000,000 rows of 768-d, clustered like embeddings
    python benchmarks/vector_index.py --rows 100000    # quicker

The table is written through bench's Store (1,000 class centres, unit-variance noise around
them, L2-normalised: neighbours are the same class's nearest images, as with real embeddings).
Then bench.vector_index.build builds LanceDB's IVF-PQ index and compares it, on sampled rows used as
queries, with bench's exact search. Goals: recall@10 >= 0.95, median query latency < 100 ms.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench.arguments import positive_int  # noqa: E402

ENCODER = "synthetic/index"
CHUNK = 20_000


def write_table(store, rows: int, dim: int) -> float:
    """`rows` clustered unit vectors written in commits of CHUNK rows; returns the seconds it took."""
    from bench.store import rows_to_arrow

    table_schema = store.prepare("index", ENCODER, dim, {"synthetic": True, "dim": dim})
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    since = store.version("index", ENCODER)
    started = time.perf_counter()
    for start in range(0, rows, CHUNK):
        count = min(CHUNK, rows - start)
        labels = rng.integers(0, len(centres), count)
        vectors = centres[labels] + rng.standard_normal((count, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        batch = [{"image_id": f"img{start + i:08d}", "split": "train", "processing": "synthetic", "op_version": 1,
                  "label": int(labels[i])} for i in range(count)]
        since = store.write("index", ENCODER, rows_to_arrow(batch, vectors, table_schema), since=since).version
    store.compact("index", ENCODER)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/vector_index.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=positive_int, default=1_000_000, help="table rows (default: 1,000,000)")
    parser.add_argument("--dim", type=positive_int, default=768, help="vector dimension (default: 768)")
    parser.add_argument("--sample", type=positive_int, default=100, help="rows used as queries (default: 100)")
    parser.add_argument("--home", help="folder for the store (default: a temporary folder)")
    arguments = parser.parse_args(argv)

    from bench import vector_index
    from bench.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-index-") as scratch:
        store = Store(Path(arguments.home or scratch) / "embeddings")
        store.drop("index", ENCODER)
        seconds = write_table(store, arguments.rows, arguments.dim)
        print(f"table: {arguments.rows} rows of {arguments.dim}-d written in {seconds:.1f} s")
        report = vector_index.build(store, "index", ENCODER, sample=arguments.sample)
        print(report.line())
        met = report.recall_at_10 >= 0.95 and report.latency_ms < 100
        print(f"goals (recall@10 >= 0.95, median latency < 100 ms): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
