"""kNN "processing influence" (PROTOCOL.md §7): semantic kNN accuracy when the database is
processed like the query, unlike it, or mixed by semantic relation to the query.

For query processing t, the top-k over "label == y under p" and over "label != y under n" are
independent, so K x K class-restricted neighbour lists are computed once and merged for each
(t, p, n) triple instead of running K^3 searches over per-query mixed databases.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from rich.console import Console

from bench import data, index, processing, results
from bench.seeding import uniform_choice
from bench.encoders.spec import EncoderSpec
from bench.store import SplitVectors, Store
from bench.tasks.cells import Computed, run_cells
from bench.tasks.options import RunOptions

NAME = "knn-influence"
SETUPS = ("all_same", "all_diff", "pos_same", "neg_same", "uniform")
UNIFORM_PURPOSE = "knn-uniform"


@dataclass(frozen=True)
class KnnInfluence:
    classes: tuple[str, ...]  # processing classes of the group, in label order
    k: int
    triples: dict[tuple[str, str, str], float]  # (test, pos, neg) -> knn_acc1 in %
    uniform: dict[tuple[str, int], float]  # (test, seed) -> knn_acc1 in %
    num_classes: int

    def setups(self) -> dict[str, float]:
        """Simple means exactly as the paper's generate_results.py (§7.3)."""
        others = [(t, o) for t, o in itertools.permutations(self.classes, 2)]
        return {
            "all_same": _mean(self.triples[t, t, t] for t in self.classes),
            "all_diff": _mean(self.triples[t, o, o] for t, o in others),
            "pos_same": _mean(self.triples[t, t, o] for t, o in others),
            "neg_same": _mean(self.triples[t, o, t] for t, o in others),
            "uniform": _mean(self.uniform.values()),
        }


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def vote(neighbour_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Unweighted majority vote per row; -1 entries are ignored; ties go to the lowest class."""
    counts = np.zeros((len(neighbour_labels), num_classes), dtype=np.int64)
    rows, columns = np.nonzero(neighbour_labels >= 0)
    np.add.at(counts, (rows, neighbour_labels[rows, columns]), 1)
    return counts.argmax(axis=1)


def merge(positives: index.Neighbours, negatives: index.Neighbours, k: int) -> np.ndarray:
    """Top-k rows of the union of two neighbour lists, by (score desc, row asc)."""
    scores = np.concatenate([positives.scores, negatives.scores], axis=1)
    rows = np.concatenate([positives.rows, negatives.rows], axis=1)
    order = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -scores), axis=-1)[:, :k]
    return np.take_along_axis(rows, order, axis=1)


def class_count(*splits: SplitVectors) -> int:
    """Classes the labels range over: labels are 0..n-1 across the splits together."""
    return int(max(split.labels.max() for split in splits)) + 1


def accuracy(rows: np.ndarray, database_labels: np.ndarray, query_labels: np.ndarray, num_classes: int) -> float:
    neighbour_labels = np.where(rows >= 0, database_labels[np.maximum(rows, 0)], -1)
    return float(100.0 * np.mean(vote(neighbour_labels, num_classes) == query_labels))


def run(
    train: SplitVectors,
    val: SplitVectors,
    classes: Sequence[str],
    *,
    k: int = 10,
    seeds: Sequence[int] = tuple(range(10)),
    backend: str = "auto",
) -> KnnInfluence:
    """All K^3 (test, pos, neg) triples and the uniform setup for one processing group."""
    num_classes = class_count(train, val)
    database = {name: index.normalise(train.vectors[name]) for name in classes}
    queries = {name: index.normalise(val.vectors[name]) for name in classes}

    def restricted(test: str, db: str, restrict: str) -> index.Neighbours:
        return index.search(
            queries[test], database[db], k,
            restrict=restrict, query_labels=val.labels, database_labels=train.labels, backend=backend,
        )

    triples: dict[tuple[str, str, str], float] = {}
    for test in classes:
        positives = {p: restricted(test, p, "same") for p in classes}
        negatives = {n: restricted(test, n, "other") for n in classes}
        for p, n in itertools.product(classes, classes):
            rows = merge(positives[p], negatives[n], k)
            triples[test, p, n] = accuracy(rows, train.labels, val.labels, num_classes)

    uniform: dict[tuple[str, int], float] = {}
    stacked = np.stack([database[name] for name in classes])  # (K, N, D)
    for seed in seeds:
        assignment = uniform_choice(seed, train.image_ids, len(classes), UNIFORM_PURPOSE)
        mixed = stacked[assignment, np.arange(len(assignment))]
        for test in classes:
            found = index.search(queries[test], mixed, k, backend=backend)
            uniform[test, seed] = accuracy(found.rows, train.labels, val.labels, num_classes)
    return KnnInfluence(tuple(classes), k, triples, uniform, num_classes)


def execute(options: RunOptions, console: Console) -> list[Path]:
    """Extract what is missing, compute each encoder's cell, skip cells already stored."""
    dataset = data.get(options.dataset)
    classes = processing.group(options.group)
    k = options.k or dataset.knn_k

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train = store.split_vectors(key, spec.name, "train", classes)
        val = store.split_vectors(key, spec.name, "val", classes)
        outcome = run(train, val, classes, k=k, seeds=range(options.seeds), backend=options.backend)
        setups = outcome.setups()
        return Computed(
            metric="knn_acc1",
            metrics={
                "knn_acc1": setups,
                "gap_pos_minus_neg": setups["pos_same"] - setups["neg_same"],
                "chance": 100.0 / outcome.num_classes,
            },
            detail={
                "classes": list(classes),
                "triples": [{"test": t, "pos": p, "neg": n, "knn_acc1": acc} for (t, p, n), acc in outcome.triples.items()],
                "uniform": [{"test": t, "seed": s, "knn_acc1": acc} for (t, s), acc in outcome.uniform.items()],
                "train_images": int(len(train.image_ids)),
                "val_images": int(len(val.image_ids)),
            },
            provenance={
                "backend": index.resolve_backend(options.backend),
                "seeds": list(range(options.seeds)),
                "uniform_assignment": f"uniform_choice(seed, image_id, {len(classes)}, {UNIFORM_PURPOSE!r})",
            },
        )

    return run_cells(
        options, console, task=NAME, condition=results.condition(group=options.group, k=k, seeds=options.seeds),
        processings=classes, splits=("train", "val"), compute=compute,
    )
