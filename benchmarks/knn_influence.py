#!/usr/bin/env python
"""kNN processing influence: bench's KxK decomposition against the naive K^3 mixed-database search.

Run from the project root:

    python benchmarks/knn_influence.py --quick        # 4000 x 1000 x 128-d, seconds
    python benchmarks/knn_influence.py                # default size (see --help)
    python benchmarks/knn_influence.py --backend torch --database 20000 --queries 5000 --naive-limit 2

Both methods compute the kNN accuracy of every (test, pos, neg) triple of K processing classes
(docs/protocol.md#knn-influence: a query processed with `test`; each database image under `pos` when its
semantic label equals the query's and under `neg` otherwise). The uniform setup is left out
(seeds=()) because both methods would run it identically.

(a) decomposition: bench.tasks.knn_influence.run(train, val, classes, k=k, seeds=(), backend=backend).
    For each test processing t it runs K "same-label" and K "other-label" restricted searches
    over all queries and merges them for the K x K (pos, neg) pairs: 2K^2 searches in all.
(b) naive: for every triple (t, p, n) and every semantic class c, the mixed database seen by
    class-c queries (rows labelled c under p, every other row under n) is materialised and
    searched with bench.exact_search.search(queries_c, mixed_c, k, backend=backend); the neighbours
    vote with bench.knn.accuracy. That is K^3 searches of the full database
    (K^3 x C exact_search.search calls). To be fair to it the mixed database is not rebuilt from
    scratch for each class: one buffer holds the database under n, the class-c rows are swapped
    to p for the class-c queries of all K test processings, then swapped back.

Both timings include L2-normalising the vectors. One untimed warm-up search runs first.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

# faiss-cpu and torch each bring their own OpenMP runtime; with both loaded (bench.exact_search's
# resolve_backend imports torch to look for CUDA) their busy-waiting worker threads fight over
# the cores and small faiss searches get ~10x slower. Must be set before either library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench import exact_search, knn  # noqa: E402
from bench.arguments import positive_int  # noqa: E402
from bench.vectors import SplitVectors  # noqa: E402
from bench.tasks import knn_influence  # noqa: E402
from bench.vectors import normalise  # noqa: E402

DEFAULTS = {"database": 6_000, "queries": 1_200, "dim": 512}  # 20000 x 5000 on 2 CPU cores: naive ~1 h
QUICK = {"database": 4_000, "queries": 1_000, "dim": 128}

EPILOG = """synthetic embeddings (float32, seeded):
  Each semantic class has a random centroid; an image's base vector is its class centroid plus
  Gaussian noise. Processing class j adds its own random offset direction (the same for every
  image) plus a little per-image jitter to the same base vectors, so neighbour lists differ
  between processings and pos-same / neg-same move away from all-same.

what is timed:
  decomposition  the whole knn_influence.run(..., seeds=()) call (normalising, 2K^2 restricted
                 searches, K^3 merges and votes).
  naive          normalising, building the mixed databases, K^3 x C per-class exact_search.search calls,
                 and the votes (knn.accuracy) for every triple.
  With --naive-limit N only the first N (pos, neg) pairs (N x K triples) of the naive baseline
  run; its full time is extrapolated from the measured time per triple and the speedup is marked
  as extrapolated. Results are compared on the triples that ran.

threads:
  The script sets OMP_WAIT_POLICY=PASSIVE unless the environment already sets it. faiss-cpu and
  torch ship separate OpenMP runtimes and bench.exact_search.resolve_backend("auto") imports torch; with
  both loaded and the default (spinning) wait policy, every small faiss search pays for the other
  runtime's busy threads (about 10x slower per-class searches on a 2-core machine). Run with
  OMP_WAIT_POLICY=ACTIVE to measure that default behaviour instead.

exit status: 1 when the two methods disagree on any triple that both computed; 0 otherwise.
  --strict also exits 1 when the speedup goal is not met.

examples:
  python benchmarks/knn_influence.py --quick
  python benchmarks/knn_influence.py --backend torch
  python benchmarks/knn_influence.py --database 20000 --queries 5000 --dim 512 --naive-limit 2
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/knn_influence.py",
        description=(
            "Time bench's kNN processing-influence decomposition (KxK class-restricted searches per "
            "query processing, merged per (test, pos, neg) triple) against the naive K^3 baseline that "
            "searches every mixed database, on the same synthetic embeddings; check that both give "
            "identical accuracies and report the speedup."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_argument_group("size")
    size.add_argument("--database", type=positive_int, help=f"database (train) images (default: {DEFAULTS['database']}; --quick: {QUICK['database']})")
    size.add_argument("--queries", type=positive_int, help=f"query (val) images (default: {DEFAULTS['queries']}; --quick: {QUICK['queries']})")
    size.add_argument("--dim", type=positive_int, help=f"embedding width (default: {DEFAULTS['dim']}; --quick: {QUICK['dim']})")
    size.add_argument("--processings", "-K", type=positive_int, default=6, help="processing classes K (default: 6)")
    size.add_argument("--classes", type=positive_int, default=100, help="semantic classes (default: 100)")
    size.add_argument(
        "--quick", action="store_true",
        help=f"small size that runs in seconds: {QUICK['database']} x {QUICK['queries']} x {QUICK['dim']}-d "
        "(explicit --database/--queries/--dim still win)",
    )
    parser.add_argument("--k", type=positive_int, default=10, help="neighbours per query (default: 10)")
    parser.add_argument("--backend", default="auto", choices=exact_search.BACKENDS, help="bench.exact_search search backend for both methods (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic embeddings (default: 0)")
    parser.add_argument(
        "--naive-limit", type=positive_int, metavar="N",
        help="run the naive baseline on only the first N (pos, neg) pairs (N x K triples) and extrapolate "
        "its time to all K^3 triples (default: run it all)",
    )
    parser.add_argument("--goal", type=float, default=4.0, help="speedup naive/decomposition that counts as met (default: 4)")
    parser.add_argument("--strict", action="store_true", help="also exit with status 1 when the goal is not met")
    return parser


def synthetic(
    database: int, queries: int, dim: int, processings: int, classes: int, seed: int
) -> tuple[SplitVectors, SplitVectors, tuple[str, ...]]:
    """Train/val embeddings under K processings: shared base vectors + a per-processing offset."""
    rng = np.random.default_rng(seed)
    scale = np.float32(1.0 / np.sqrt(dim))
    spread = np.float32((dim / 128) ** 0.35)  # wider embeddings separate classes more easily: add more noise
    centroids = rng.standard_normal((classes, dim), dtype=np.float32) * scale
    offsets = rng.standard_normal((processings, dim), dtype=np.float32) * scale * np.float32(0.45) * spread
    names = tuple(f"proc{j}" for j in range(processings))

    def split(count: int, prefix: str) -> SplitVectors:
        labels = rng.permutation(np.arange(count) % classes).astype(np.int64)  # balanced, every class present
        base = centroids[labels] + rng.standard_normal((count, dim), dtype=np.float32) * scale * np.float32(2.3) * spread
        vectors = {}
        for j, name in enumerate(names):
            jitter = rng.standard_normal((count, dim), dtype=np.float32) * scale * np.float32(0.25)
            vectors[name] = (base + offsets[j] + jitter).astype(np.float32)
        image_ids = np.asarray([f"{prefix}{i:07d}" for i in range(count)])
        return SplitVectors(image_ids=image_ids, labels=labels, vectors=vectors)

    return split(database, "train"), split(queries, "val"), names


def naive(
    train: SplitVectors,
    val: SplitVectors,
    classes: tuple[str, ...],
    k: int,
    backend: str,
    pairs: list[tuple[str, str]],
) -> tuple[dict[tuple[str, str, str], float], int]:
    """Accuracy of every (t, p, n) with (p, n) in `pairs`, by searching each mixed database.

    Returns the accuracies and the number of exact_search.search calls made.
    """
    num_classes = knn.class_count(train, val)
    database = {name: normalise(train.vectors[name]) for name in classes}
    queries = {name: normalise(val.vectors[name]) for name in classes}
    semantic = [(int(c), np.flatnonzero(val.labels == c), np.flatnonzero(train.labels == c)) for c in np.unique(val.labels)]
    mixed = np.empty_like(database[classes[0]])
    triples: dict[tuple[str, str, str], float] = {}
    calls = 0
    for p, n in pairs:
        np.copyto(mixed, database[n])  # every row under n ...
        rows = {t: np.full((len(val.labels), k), -1, dtype=np.int64) for t in classes}
        for _, members, same in semantic:
            mixed[same] = database[p][same]  # ... except class c's own rows, under p
            for t in classes:
                found = exact_search.search(queries[t][members], mixed, k, backend=backend)
                rows[t][members] = found.rows
                calls += 1
            mixed[same] = database[n][same]
        for t in classes:
            triples[t, p, n] = knn.accuracy(rows[t], train.labels, val.labels, num_classes)
    return triples, calls


def setup_means(triples: dict[tuple[str, str, str], float], classes: tuple[str, ...], k: int) -> dict[str, float]:
    outcome = knn_influence.KnnInfluence(classes, k, triples, {}, 0)
    return {name: value for name, value in outcome.setups().items() if name != "uniform"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    size = QUICK if args.quick else DEFAULTS
    database = args.database or size["database"]
    queries = args.queries or size["queries"]
    dim = args.dim or size["dim"]
    K, k, C = args.processings, args.k, args.classes
    backend = exact_search.resolve_backend(args.backend)
    all_pairs = list(itertools.product(range(K), range(K)))
    limit = min(args.naive_limit or len(all_pairs), len(all_pairs))

    print(f"synthetic embeddings: {database} database x {queries} queries x {dim}-d, K={K} processings, "
          f"{C} semantic classes, k={k}, seed {args.seed}")
    print(f"backend: {backend} (requested {args.backend}); OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    started = time.perf_counter()
    train, val, classes = synthetic(database, queries, dim, K, C, args.seed)
    print(f"built in {time.perf_counter() - started:.1f}s")

    warm = normalise(train.vectors[classes[0]][: min(database, 256)])
    exact_search.search(warm[:8], warm, k, backend=backend)  # untimed: imports, thread pools

    # A floor no naive method reaches: one batched search of every query, K^3 times. (The mixed
    # database differs by query class, so a real naive search cannot batch all queries at once.)
    started = time.perf_counter()
    exact_search.search(normalise(val.vectors[classes[0]]), normalise(train.vectors[classes[0]]), k, backend=args.backend)
    full_search_s = time.perf_counter() - started

    print("(a) decomposition: knn_influence.run(..., seeds=()) ...", flush=True)
    started = time.perf_counter()
    decomposed = knn_influence.run(train, val, classes, k=k, seeds=(), backend=args.backend).triples
    decomposition_s = time.perf_counter() - started
    print(f"    {decomposition_s:.2f}s")

    pairs = [(classes[p], classes[n]) for p, n in all_pairs[:limit]]
    ran = limit * K
    total = K**3
    print(f"(b) naive K^3: {ran} of {total} triples ...", flush=True)
    started = time.perf_counter()
    baseline, calls = naive(train, val, classes, k, args.backend, pairs)
    naive_measured_s = time.perf_counter() - started
    per_triple = naive_measured_s / ran
    naive_s = per_triple * total
    print(f"    {naive_measured_s:.2f}s ({per_triple:.3f}s per triple)")

    semantic_classes = len(np.unique(val.labels))
    print()
    print(f"searches of all {queries} queries over the database (each split by bench.exact_search into one pass per semantic class):")
    print(f"  decomposition: 2*K^2 = {2 * K * K} ({K * K} over same-label rows + {K * K} over other-label rows), "
          f"in {2 * K * K} exact_search.search calls")
    print(f"  naive:         K^3   = {total} over full mixed databases, in K^3 x {semantic_classes} = "
          f"{total * semantic_classes} per-class exact_search.search calls" + ("" if ran == total else f" ({calls} made)"))

    compared = [key for key in baseline]
    differing = [key for key in compared if decomposed[key] != baseline[key]]
    largest = max((abs(decomposed[key] - baseline[key]) for key in compared), default=0.0)
    print()
    for name, value in setup_means(decomposed, classes, k).items():
        line = f"  {name:9s} {value:7.3f}%"
        if ran == total:
            line += f"   naive {setup_means(baseline, classes, k)[name]:7.3f}%"
        print(line)
    scope = "" if ran == total else f" (on the {ran} of {total} triples the naive baseline ran)"
    print(f"equal results: {'no' if differing else 'yes'}{scope}; "
          f"{len(differing)} of {len(compared)} triples differ, largest difference {largest:.4f} points")
    for key in differing[:10]:
        print(f"  differs: {key}: decomposition {decomposed[key]:.4f}  naive {baseline[key]:.4f}")

    print()
    print(f"decomposition wall time: {decomposition_s:.2f}s")
    if ran == total:
        print(f"naive wall time:         {naive_s:.2f}s")
    else:
        print(f"naive wall time:         {naive_s:.2f}s extrapolated ({naive_measured_s:.2f}s measured on {ran} triples, "
              f"{per_triple:.3f}s per triple x {total})")
    floor = full_search_s * total
    print(f"floor of any naive method (K^3 x one batched search of all queries, {full_search_s:.2f}s): {floor:.2f}s, "
          f"{floor / decomposition_s:.1f}x the decomposition's time")
    speedup = naive_s / decomposition_s
    met = speedup >= args.goal
    note = "" if ran == total else f"  (naive extrapolated from {ran} of {total} triples)"
    print(f"speedup (K^3 naive / KxK decomposition): {speedup:.1f}x  goal >= {args.goal:g}x: {'met' if met else 'not met'}{note}")
    if differing:
        return 1
    if args.strict and not met:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
