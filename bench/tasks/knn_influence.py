"""kNN "processing influence" (docs/protocol.md#knn-influence): semantic kNN accuracy when the database is
processed like the query, unlike it, or mixed by semantic relation to the query.

For query processing t, the top-k over "label == y under p" and over "label != y under n" are
independent, so K x K class-restricted neighbour lists are computed once and merged for each
(t, p, n) triple instead of running K^3 searches over per-query mixed databases.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench import bootstrap, index, plots, processing, results, versioned_index
from bench.encoders.spec import EncoderSpec
from bench.knn import class_count, correct
from bench.seeding import uniform_choice
from bench.store import SplitVectors, Store
from bench.tasks.cells import Computed, run_cells
from bench.tasks.options import BACKEND, BOOTSTRAP, GROUP, SEEDS, K, knn_dataset, resampling
from bench.tasks.request import RunRequest
from bench.tasks.spec import Column, TaskSpec, Trace

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
    triple_hits: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)  # per query: voted right
    uniform_hits: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def members(self) -> dict[str, list[tuple]]:
        """The (test, pos, neg) triples, or for uniform the (test, seed) draws, each setup averages over."""
        others = list(itertools.permutations(self.classes, 2))
        return {
            "all_same": [(t, t, t) for t in self.classes],
            "all_diff": [(t, o, o) for t, o in others],
            "pos_same": [(t, t, o) for t, o in others],
            "neg_same": [(t, o, t) for t, o in others],
            "uniform": list(self.uniform),
        }

    def setups(self) -> dict[str, float]:
        """Simple means exactly as the paper's generate_results.py (§7.3)."""
        return {name: _mean((self.uniform if name == "uniform" else self.triples)[key] for key in keys)
                for name, keys in self.members().items()}

    def per_query(self) -> dict[str, np.ndarray]:
        """Each setup's score per val image, in %: the mean of its hits over the setup's triples
        (or uniform draws). Every triple has the same queries, so the mean over queries of
        these is exactly `setups()`, and a resample of queries gives every setup at once."""
        queries = len(next(iter(self.triple_hits.values())))
        out = {}
        for name, keys in self.members().items():
            hits = [(self.uniform_hits if name == "uniform" else self.triple_hits)[key] for key in keys]
            out[name] = 100.0 * np.mean(hits, axis=0) if hits else np.full(queries, np.nan)
        return out

    def intervals(self, resampling: bootstrap.Resampling) -> dict[str, list[float]]:
        """95 % intervals of every setup and of pos−neg, resampling val images (an image keeps
        its version under every query processing: those are not independent queries)."""
        per_query = self.per_query()
        return bootstrap.mean_intervals(
            {**{f"knn_acc1.{name}": values for name, values in per_query.items()},
             "gap_pos_minus_neg": per_query["pos_same"] - per_query["neg_same"]}, resampling,
        )


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def merge(positives: index.Neighbours, negatives: index.Neighbours, k: int) -> np.ndarray:
    """Top-k rows of the union of two neighbour lists, by (score desc, row asc)."""
    scores = np.concatenate([positives.scores, negatives.scores], axis=1)
    rows = np.concatenate([positives.rows, negatives.rows], axis=1)
    order = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -scores), axis=-1)[:, :k]
    return np.take_along_axis(rows, order, axis=1)


def run(
    train: SplitVectors,
    val: SplitVectors,
    classes: Sequence[str],
    *,
    k: int = 10,
    seeds: Sequence[int] = tuple(range(10)),
    backend: str = "auto",
) -> KnnInfluence:
    """All K^3 (test, pos, neg) triples and the uniform setup for one processing group.

    Per query processing t, one search of the K database versions gives the top-k of every
    version among the query's class ("same") and among the other classes ("other"), and the
    top-k of every seed's mixed database; each (p, n) triple merges "same" under p with
    "other" under n, which is exactly the top-k of the per-query mixed database."""
    num_classes = class_count(train, val)
    seeds = list(seeds)
    mixes = [uniform_choice(seed, train.image_ids, len(classes), UNIFORM_PURPOSE) for seed in seeds]
    database = versioned_index.build([train.vectors[name] for name in classes], train.labels, backend)
    triple_hits: dict[tuple[str, str, str], np.ndarray] = {}
    uniform_hits: dict[tuple[str, int], np.ndarray] = {}
    for test in classes:
        found = database.search(val.vectors[test], val.labels, k, mixes)
        for (p, positives), (n, negatives) in itertools.product(zip(classes, found.same), zip(classes, found.other)):
            triple_hits[test, p, n] = correct(merge(positives, negatives, k), train.labels, val.labels, num_classes)
        for seed, mixed in zip(seeds, found.mixed):
            uniform_hits[test, seed] = correct(mixed.rows, train.labels, val.labels, num_classes)
    return KnnInfluence(
        tuple(classes), k, {key: _percent(hits) for key, hits in triple_hits.items()},
        {key: _percent(hits) for key, hits in uniform_hits.items()}, num_classes, triple_hits, uniform_hits,
    )


def _percent(hits: np.ndarray) -> float:
    return float(100.0 * np.mean(hits))


def execute(request: RunRequest) -> list[Path]:
    """Extract what is missing, compute each encoder's cell, skip cells already stored."""
    group, seeds, backend = request.value(GROUP), request.value(SEEDS), request.value(BACKEND)
    resampled = resampling(request, "val image")
    classes = processing.group(group)
    dataset, k = knn_dataset(request, NAME)

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train = store.split_vectors(key, spec.name, "train", classes)
        val = store.split_vectors(key, spec.name, "val", classes)
        outcome = run(train, val, classes, k=k, seeds=range(seeds), backend=backend)
        setups = outcome.setups()
        began = time.perf_counter()
        intervals = outcome.intervals(resampled)
        return Computed(
            metric="knn_acc1",
            metrics={
                "knn_acc1": setups,
                "gap_pos_minus_neg": setups["pos_same"] - setups["neg_same"],
                "chance": 100.0 / outcome.num_classes,
                results.INTERVALS: intervals,
            },
            detail={
                "classes": list(classes),
                "triples": [{"test": t, "pos": p, "neg": n, "knn_acc1": acc} for (t, p, n), acc in outcome.triples.items()],
                "uniform": [{"test": t, "seed": s, "knn_acc1": acc} for (t, s), acc in outcome.uniform.items()],
                "train_images": int(len(train.image_ids)),
                "val_images": int(len(val.image_ids)),
            },
            provenance={
                "backend": versioned_index.describe(backend),
                "seeds": list(range(seeds)),
                "uniform_assignment": f"uniform_choice(seed, image_id, {len(classes)}, {UNIFORM_PURPOSE!r})",
                "bootstrap_s": time.perf_counter() - began,
            },
        )

    return run_cells(
        request, task=NAME, condition=results.condition(group=group, k=k, seeds=seeds),
        processings=classes, splits=("train", "val"), compute=compute, dataset=dataset,
        resampling=resampled,
    )


def figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[plots.Figure]:
    """Accuracy per encoder by family, and the pos−neg gap per encoder with its interval."""
    cells = results.ordered(task.primary, cells)
    out = []
    figure = plots.family_bars(plt, cells, "knn_acc1.all_same", "kNN accuracy, all-same (%)")
    out.append(plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('knn-accuracy', dataset, condition)}.png"),
                            f"Semantic kNN accuracy (all-same) per encoder on {dataset}, by family; dotted: chance."))
    figure = plots.interval_chart(plt, cells, [("gap_pos_minus_neg", "pos−neg")], "pos-same − neg-same (points of kNN accuracy)")
    out.append(plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('knn-gap', dataset, condition)}.png"),
                            f"kNN processing influence on {dataset} ({condition}): pos-same minus neg-same per encoder, with its 95 % "
                            "bootstrap interval over val images. Right of 0: the encoder pulls same-processing images together; "
                            "a filled point's interval excludes 0."))
    return out


TASK = TaskSpec(
    name=NAME,
    description="kNN accuracy when the database is processed like / unlike the query (paper §7)",
    execute=execute,
    columns=(
        Column("all-same", "knn_acc1.all_same"),
        Column("all-diff", "knn_acc1.all_diff"),
        Column("pos-same", "knn_acc1.pos_same"),
        Column("neg-same", "knn_acc1.neg_same"),
        Column("uniform", "knn_acc1.uniform"),
        Column("pos−neg", "gap_pos_minus_neg", interval=True),
        Column("chance", "chance"),
    ),
    aggregation=(
        "knn_acc1 (%): unweighted k-NN vote, database = train, queries = val. all-same: mean over the K "
        "query processings t; all-diff / pos-same / neg-same: mean over the K(K-1) ordered pairs (t, o≠t); "
        "uniform: mean over K query processings × seeds, database images each under a random class. "
        "pos−neg = pos-same − neg-same. " + bootstrap.rule("val image")
    ),
    options=(GROUP, K, SEEDS, BACKEND, BOOTSTRAP),
    figures=figures,
    trace=Trace("pos−neg", "gap_pos_minus_neg"),
)
