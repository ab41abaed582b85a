#!/usr/bin/env python
"""Paper scale on one machine: an ImageNet-shaped store, timed phase by phase against baselines
measured in the same run.

Run from the project root:

    python benchmarks/scale.py                           # default preset: 5 % of ImageNet's classes, 768-d, K = 6
    python benchmarks/scale.py --fraction 1 --backend torch --in-memory   # the paper's shape, on a GPU machine

The data has ImageNet's per-class shape (1,281 train and 50 val images per class); --fraction
scales the number of classes (1000 x fraction) and keeps that shape. Vectors are synthetic: a
class centre, a per-processing shift and per-image noise, so kNN accuracy is neither 0 nor 100 %.

Phases and what each is compared with:
  write   rows written through bench's real Store in commits of 4,096 rows, image-major as
          extraction writes them: the per-commit time of the last tenth of the commits against
          the first tenth (goal <= 1.5x: commits do not slow down as the table grows).
  read    Store.split_vectors (one processing of the train split, aligned by image id) against a
          plain scan of the same rows and columns (goal: scan / split_vectors >= 0.7, i.e. at most
          one copy beyond the scan). Alternating, best of --rounds.
  knn     knn_influence.run (every (t, p, n) triple and every uniform seed) against the search
          floor: the K^2 + K x seeds plain unrestricted top-k searches of all queries that any
          straightforward method must run (K^2 "other" databases, K x seeds uniform ones), each
          timed as one flat search on the same machine (FAISS CPU and torch; the faster counts).
          Goal <= 1.0x. Run in a fresh process, which also reports its peak resident memory as a
          multiple of one processing's train matrix.
  check   on a small instance with planted ties, knn_influence.run equals a literal brute force
          (per query, the mixed database built and fully sorted).

--in-memory skips the store (write and read phases): the vectors are generated in memory, so
the knn phase runs where neither LanceDB nor FAISS is installed (a GPU machine with torch only).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench.arguments import positive_int  # noqa: E402
from bench.vectors import normalise  # noqa: E402

ENCODER = "synthetic/scale"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python benchmarks/scale.py", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.05, help="share of ImageNet's 1000 classes (default: 0.05 = 50 classes)")
    parser.add_argument("--classes", type=positive_int, default=1000, help="classes at --fraction 1 (default: 1000)")
    parser.add_argument("--train-per-class", type=positive_int, default=1281, help="train images per class (default: 1281, ImageNet's)")
    parser.add_argument("--val-per-class", type=positive_int, default=50, help="val images per class (default: 50, ImageNet's)")
    parser.add_argument("--dim", type=positive_int, default=768, help="embedding dimension (default: 768)")
    parser.add_argument("--processings", type=positive_int, default=6, help="K, processing classes of the group (default: 6, the JPEG group)")
    parser.add_argument("--seeds", type=positive_int, default=10, help="uniform seeds (default: 10)")
    parser.add_argument("--k", type=positive_int, default=10, help="neighbours (default: 10)")
    parser.add_argument("--backend", default="auto", help="knn-influence backend: auto, torch, faiss-cpu, faiss-gpu (default: auto)")
    parser.add_argument("--in-memory", action="store_true", help="no store: generate the vectors in memory (no LanceDB or FAISS needed)")
    parser.add_argument("--home", help="folder for the store (default: a temporary folder, removed afterwards)")
    parser.add_argument("--phases", default="write,read,knn,check", help="comma-separated phases to run (default: all)")
    parser.add_argument("--rounds", type=positive_int, default=2, help="alternating rounds for the read and knn baselines (default: 2)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the knn phase in a fresh process
    return parser


# ---- synthetic ImageNet-shaped data -------------------------------------------------------------

def class_count(arguments) -> int:
    return max(2, round(arguments.classes * arguments.fraction))


def class_blocks(arguments, split: str) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """Per class: its image ids and (K, n, dim) float32 vectors, deterministic per (class, split)."""
    per_class = arguments.train_per_class if split == "train" else arguments.val_per_class
    shifts = np.random.default_rng(12345).standard_normal((arguments.processings, arguments.dim), dtype=np.float32) * 0.35
    for label in range(class_count(arguments)):
        rng = np.random.default_rng([label, 0 if split == "train" else 1])
        centre = np.random.default_rng([label, 7]).standard_normal(arguments.dim, dtype=np.float32)
        base = centre + 5.0 * rng.standard_normal((per_class, arguments.dim), dtype=np.float32)
        versions = base[None] + shifts[:, None, :] + 0.3 * rng.standard_normal((arguments.processings, per_class, arguments.dim), dtype=np.float32)
        ids = [f"c{label:04d}/{split}/{index:05d}" for index in range(per_class)]
        yield label, ids, versions


def processing_names(arguments) -> list[str]:
    return [f"p{index}" for index in range(arguments.processings)]


def in_memory(arguments, split: str):
    from bench.store import SplitVectors

    names = processing_names(arguments)
    ids, labels, parts = [], [], []
    for label, block_ids, versions in class_blocks(arguments, split):
        ids += block_ids
        labels.append(np.full(len(block_ids), label, dtype=np.int64))
        parts.append(versions)
    stacked = np.concatenate(parts, axis=1)
    order = np.argsort(np.asarray(ids, dtype=str), kind="stable")  # the store's row order: by image id
    return SplitVectors(np.asarray(ids, dtype=str)[order], np.concatenate(labels)[order],
                        {name: np.ascontiguousarray(stacked[v][order]) for v, name in enumerate(names)})


# ---- write and read phases ----------------------------------------------------------------------

def write_phase(arguments, store) -> dict:
    """Rows through extraction's own commit stage (Committer), each store write timed."""
    from bench.extraction.commit import COMMIT_ROWS, Committer

    names = processing_names(arguments)
    table_schema = store.prepare("scale", ENCODER, arguments.dim, {"synthetic": True, "dim": arguments.dim})
    times: list[float] = []
    write = store.write

    def timed_write(*args, **kwargs):
        started = time.perf_counter()
        written = write(*args, **kwargs)
        times.append(time.perf_counter() - started)
        return written

    store.write = timed_write
    committer = Committer(store, "scale", ENCODER, table_schema, commit_seconds=float("inf"), since=store.version("scale", ENCODER))
    rows, vectors = [], []

    def commit() -> None:
        committer.add(list(rows), np.concatenate(vectors))
        rows.clear()
        vectors.clear()

    for split in ("train", "val"):
        for label, ids, versions in class_blocks(arguments, split):
            for index, image_id in enumerate(ids):  # image-major, as extraction writes
                for v, name in enumerate(names):
                    rows.append({"image_id": image_id, "split": split, "processing": name, "group": "scale", "op_version": 1,
                                 "label": label, "label_name": f"class {label}"})
                    vectors.append(versions[v, index][None])
                    if len(rows) == COMMIT_ROWS:
                        commit()
    if rows:
        commit()
    committer.flush()
    store.write = write
    started = time.perf_counter()
    store.compact("scale", ENCODER)
    tenth = max(1, len(times) // 10)
    return {"commits": len(times), "rows": store.count("scale", ENCODER), "first": float(np.mean(times[:tenth])),
            "last": float(np.mean(times[-tenth:])), "total": float(np.sum(times)), "compact": time.perf_counter() - started}


def read_phase(arguments, store) -> dict:
    name = processing_names(arguments)[0]
    where = f"split = 'train' AND processing = '{name}'"
    best = {"scan": float("inf"), "split_vectors": float("inf")}
    for _ in range(arguments.rounds):
        started = time.perf_counter()
        scanned = store.scan("scale", ENCODER, where=where, columns=["image_id", "label", "vector"])
        best["scan"] = min(best["scan"], time.perf_counter() - started)
        rows = scanned.num_rows
        del scanned
        started = time.perf_counter()
        aligned = store.split_vectors("scale", ENCODER, "train", [name])
        best["split_vectors"] = min(best["split_vectors"], time.perf_counter() - started)
        del aligned
    return {**best, "rows": rows}


# ---- knn phase (in a fresh process) -------------------------------------------------------------

def knn_measure(arguments) -> dict:
    from bench import index
    from bench.tasks import knn_influence

    names = processing_names(arguments)
    if arguments.in_memory:
        train, val = in_memory(arguments, "train"), in_memory(arguments, "val")
    else:
        from bench.store import Store

        store = Store(Path(arguments.home) / "embeddings")
        train = store.split_vectors("scale", ENCODER, "train", names)
        val = store.split_vectors("scale", ENCODER, "val", names)
    loaded_rss = _peak_rss()
    unit_db = normalise(train.vectors[names[0]])
    unit_q = normalise(val.vectors[names[0]])
    floors = {}
    for backend in _floor_backends(arguments.backend):
        search = index.plain_top_k(unit_q, unit_db, arguments.k, backend)
        search()  # warm: threads, allocator
        floors[backend] = search
    del unit_db, unit_q
    searches = len(names) ** 2 + len(names) * arguments.seeds
    one = {backend: float("inf") for backend in floors}
    run_s = float("inf")
    outcome = None
    for _ in range(arguments.rounds):  # floor and run alternate; the best of each counts
        for backend, search in floors.items():
            started = time.perf_counter()
            search()
            one[backend] = min(one[backend], time.perf_counter() - started)
        started = time.perf_counter()
        outcome = knn_influence.run(train, val, names, k=arguments.k, seeds=range(arguments.seeds), backend=arguments.backend)
        run_s = min(run_s, time.perf_counter() - started)
    matrix_bytes = train.vectors[names[0]].nbytes
    return {
        "train": len(train.labels), "val": len(val.labels), "run_s": run_s, "one_search_s": one, "searches": searches,
        "setups": outcome.setups() if outcome else {}, "peak_rss_bytes": _peak_rss(), "loaded_rss_bytes": loaded_rss,
        "matrix_bytes": matrix_bytes,
    }


def _floor_backends(requested: str) -> list[str]:
    import importlib.util

    if requested not in ("auto", "torch"):
        return [requested]
    found = ["torch"]
    if importlib.util.find_spec("faiss") is not None:
        found.append("faiss-cpu")
    return found


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# ---- check phase --------------------------------------------------------------------------------

def check_phase() -> dict:
    """knn_influence.run against a literal brute force on a small instance with planted ties."""
    from bench.store import SplitVectors
    from bench.tasks import knn_influence

    rng = np.random.default_rng(3)
    classes, labels_count, dim = ("a", "b", "c"), 4, 8
    seeds, k = (0, 1), 5

    def split(count: int, prefix: str) -> SplitVectors:
        """Four entries of +-1 per vector: every norm is 2 and every cosine a multiple of 1/4, so
        scores are exact in float32 and ties are real, whatever the summation order."""
        labels = rng.integers(0, labels_count, count)
        vectors = {}
        for name in classes:
            vector = np.zeros((count, dim), np.float32)
            for row in range(count):
                vector[row, rng.choice(dim, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
            vectors[name] = vector
        return SplitVectors(np.asarray([f"{prefix}{i:03d}" for i in range(count)]), labels, vectors)

    train, val = split(90, "t"), split(25, "v")
    outcome = knn_influence.run(train, val, classes, k=k, seeds=seeds)
    unit = {name: normalise(train.vectors[name]) for name in classes}
    queries = {name: normalise(val.vectors[name]) for name in classes}

    def accuracy(test: str, database_for) -> float:
        hits = 0
        for q in range(len(val.labels)):
            database = database_for(q)
            scores = database @ queries[test][q]
            ranked = sorted(range(len(database)), key=lambda row: (-float(scores[row]), row))[:k]
            votes = np.bincount(train.labels[ranked], minlength=labels_count)
            hits += int(np.argmax(votes) == val.labels[q])
        return 100.0 * hits / len(val.labels)

    differing = 0
    for test, pos, neg in itertools.product(classes, repeat=3):
        def mixed(q: int, pos: str = pos, neg: str = neg) -> np.ndarray:
            return np.where((train.labels == val.labels[q])[:, None], unit[pos], unit[neg])

        differing += abs(outcome.triples[test, pos, neg] - accuracy(test, mixed)) > 1e-9
    for seed in seeds:
        draw = [int.from_bytes(hashlib.blake2b(f"{seed}|knn-uniform|{i}".encode(), digest_size=8).digest(), "little") % len(classes)
                for i in train.image_ids]
        database = np.stack([unit[classes[c]][row] for row, c in enumerate(draw)])
        for test in classes:
            differing += abs(outcome.uniform[test, seed] - accuracy(test, lambda q: database)) > 1e-9
    return {"compared": len(classes) ** 3 + len(classes) * len(seeds), "differing": int(differing)}


# ---- driver -------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.measure == "knn":
        print(json.dumps(knn_measure(arguments)))
        return 0
    phases = {phase.strip() for phase in arguments.phases.split(",")}
    if arguments.in_memory:
        phases -= {"write", "read"}
    classes = class_count(arguments)
    train_rows, val_rows = classes * arguments.train_per_class, classes * arguments.val_per_class
    print(f"{classes} classes x ({arguments.train_per_class} train + {arguments.val_per_class} val) = {train_rows} train and "
          f"{val_rows} val images, {arguments.dim}-d, K = {arguments.processings}: "
          f"{(train_rows + val_rows) * arguments.processings} rows ({'in memory' if arguments.in_memory else 'through the Store'})")
    temporary = None if arguments.home or arguments.in_memory else tempfile.TemporaryDirectory(prefix="bench-scale-")
    home = Path(arguments.home or (temporary.name if temporary else "."))
    goals = []
    try:
        if phases & {"write", "read"}:
            from bench.store import Store

            store = Store(home / "embeddings")
            if "write" in phases:
                store.drop("scale", ENCODER)
                written = write_phase(arguments, store)
                ratio = written["last"] / written["first"]
                goals.append(ratio <= 1.5)
                print(f"write  {written['rows']} rows in {written['commits']} commits, {written['total']:.1f} s (+ compaction "
                      f"{written['compact']:.1f} s); per commit first tenth {written['first']:.3f} s, last tenth "
                      f"{written['last']:.3f} s: {ratio:.2f}x (goal <= 1.5x) {'met' if ratio <= 1.5 else 'NOT met'}")
            if "read" in phases:
                read = read_phase(arguments, store)
                ratio = read["scan"] / read["split_vectors"]
                goals.append(ratio >= 0.7)
                print(f"read   one processing of train ({read['rows']} rows): plain scan {read['scan']:.2f} s, split_vectors "
                      f"{read['split_vectors']:.2f} s: scan/split_vectors {ratio:.2f} (goal >= 0.7) {'met' if ratio >= 0.7 else 'NOT met'}")
        if "knn" in phases:
            forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
            if not arguments.in_memory:
                forwarded += ["--home", str(home)]
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *forwarded, "--measure", "knn"],
                                  stdout=subprocess.PIPE, text=True, check=False)
            if done.returncode != 0:
                print(f"error: the knn measurement failed (exit {done.returncode})", file=sys.stderr)
                return 2
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            floors = {backend: seconds * measured["searches"] for backend, seconds in measured["one_search_s"].items()}
            floor_backend = min(floors, key=floors.get)
            ratio = measured["run_s"] / floors[floor_backend]
            goals.append(ratio <= 1.0)
            detail = ", ".join(f"{b} {s:.3f} s" for b, s in measured["one_search_s"].items())
            print(f"knn    {measured['val']} queries x {measured['train']} train rows: one plain full search {detail}; floor = "
                  f"{measured['searches']} searches x {measured['one_search_s'][floor_backend]:.3f} s ({floor_backend}) = "
                  f"{floors[floor_backend]:.1f} s; knn_influence.run {measured['run_s']:.1f} s: {ratio:.2f}x the floor (goal <= 1.0x) "
                  f"{'met' if ratio <= 1.0 else 'NOT met'}")
            print("       setups: " + ", ".join(f"{name} {value:.2f}" for name, value in measured["setups"].items()))
            print(f"memory peak resident {measured['peak_rss_bytes'] / 2**30:.2f} GiB = {measured['peak_rss_bytes'] / measured['matrix_bytes']:.1f}x "
                  f"one processing's train matrix ({measured['matrix_bytes'] / 2**30:.2f} GiB); after loading the vectors "
                  f"{measured['loaded_rss_bytes'] / measured['matrix_bytes']:.1f}x")
        if "check" in phases:
            checked = check_phase()
            goals.append(checked["differing"] == 0)
            print(f"check  small instance with planted ties: {checked['compared'] - checked['differing']} of {checked['compared']} "
                  f"accuracies equal to the literal brute force")
    finally:
        if temporary is not None:
            temporary.cleanup()
    print(f"goals met: {sum(goals)} of {len(goals)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
