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

from bench import bootstrap, index, knn, plots, processing, results, versioned_index
from bench.data import ImageRecord
from bench.encoders.spec import EncoderSpec
from bench.gallery import Entry, Gallery, Shot, Strip, pick
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
GALLERY_QUERIES = 2  # queries shown per encoder in the report
GALLERY_SEED = 0


@dataclass(frozen=True)
class KnnInfluence:
    classes: tuple[str, ...]  # processing classes of the group, in label order
    k: int
    triples: dict[tuple[str, str, str], float]  # (test, pos, neg) -> knn_acc1 in %
    uniform: dict[tuple[str, int], float]  # (test, seed) -> knn_acc1 in %
    num_classes: int
    triple_hits: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)  # per query: voted right
    uniform_hits: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    neighbours: dict[tuple[str, str, str], index.Neighbours] = field(default_factory=dict)  # merged top-k of the kept triples

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
    return merge_scored(positives, negatives, k).rows


def merge_scored(positives: index.Neighbours, negatives: index.Neighbours, k: int) -> index.Neighbours:
    """`merge` with the scores: what a gallery shows beside each neighbour."""
    scores = np.concatenate([positives.scores, negatives.scores], axis=1)
    rows = np.concatenate([positives.rows, negatives.rows], axis=1)
    order = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -scores), axis=-1)[:, :k]
    return index.Neighbours(np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1))


def run(
    train: SplitVectors,
    val: SplitVectors,
    classes: Sequence[str],
    *,
    k: int = 10,
    seeds: Sequence[int] = tuple(range(10)),
    backend: str = "auto",
    keep: Sequence[tuple[str, str, str]] = (),
) -> KnnInfluence:
    """All K^3 (test, pos, neg) triples and the uniform setup for one processing group.

    Per query processing t, one search of the K database versions gives the top-k of every
    version among the query's class ("same") and among the other classes ("other"), and the
    top-k of every seed's mixed database; each (p, n) triple merges "same" under p with
    "other" under n, which is exactly the top-k of the per-query mixed database. The merged
    neighbours (rows and scores) of the triples in `keep` are kept, for a gallery."""
    num_classes = class_count(train, val)
    seeds = list(seeds)
    mixes = [uniform_choice(seed, train.image_ids, len(classes), UNIFORM_PURPOSE) for seed in seeds]
    database = versioned_index.build([train.vectors[name] for name in classes], train.labels, backend)
    triple_hits: dict[tuple[str, str, str], np.ndarray] = {}
    uniform_hits: dict[tuple[str, int], np.ndarray] = {}
    kept: dict[tuple[str, str, str], index.Neighbours] = {}
    for test in classes:
        found = database.search(val.vectors[test], val.labels, k, mixes)
        for (p, positives), (n, negatives) in itertools.product(zip(classes, found.same), zip(classes, found.other)):
            triple_hits[test, p, n] = correct(merge(positives, negatives, k), train.labels, val.labels, num_classes)
            if (test, p, n) in keep:
                kept[test, p, n] = merge_scored(positives, negatives, k)
        for seed, mixed in zip(seeds, found.mixed):
            uniform_hits[test, seed] = correct(mixed.rows, train.labels, val.labels, num_classes)
    return KnnInfluence(
        tuple(classes), k, {key: _percent(hits) for key, hits in triple_hits.items()},
        {key: _percent(hits) for key, hits in uniform_hits.items()}, num_classes, triple_hits, uniform_hits, kept,
    )


def _percent(hits: np.ndarray) -> float:
    return float(100.0 * np.mean(hits))


def gallery_triples(classes: Sequence[str]) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """pos-same (t, t, o) and neg-same (t, o, t) for the query processing t = the group's last
    class and o = its first (jpeg: jpeg95_444 against jpeg75_420): the pair a gallery shows."""
    test, other = classes[-1], classes[0]
    return (test, test, other), (test, other, test)


def gallery(
    outcome: KnnInfluence, train: SplitVectors, val: SplitVectors, records: dict[tuple[str, str], ImageRecord],
    size: int, interpolation: str, processing_seed: int, count: int = GALLERY_QUERIES,
) -> Gallery:
    """A few queries with their k neighbours in the pos-same and neg-same databases of
    `gallery_triples`, chosen by (seed, image id), with one whose vote differs between the two
    when there is such a query. `records`: the dataset's records by (split, image_id)."""
    pos_same, neg_same = gallery_triples(outcome.classes)
    test = pos_same[0]
    names = {record.label: record.label_name for record in records.values()}
    flips = outcome.triple_hits[pos_same] != outcome.triple_hits[neg_same]
    chosen = pick(list(val.image_ids), count, flips, GALLERY_SEED, "knn-gallery")

    def strip(name: str, title: str, triple: tuple[str, str, str], query: int) -> Strip:
        found = outcome.neighbours[triple]
        label = val.labels[query]
        rows = [int(row) for row in found.rows[query] if row >= 0]
        shots = tuple(
            Shot.of(records["train", train.image_ids[row]], triple[1] if train.labels[row] == label else triple[2],
                    (names[int(train.labels[row])],), rank=rank, score=float(score), target=bool(train.labels[row] == label))
            for rank, (row, score) in enumerate(zip(rows, found.scores[query]), start=1)
        )
        voted = int(knn.vote(train.labels[rows][None], outcome.num_classes)[0])
        hit = bool(outcome.triple_hits[triple][query])
        return Strip(name, title, f"vote: {names[voted]}, {'right' if hit else 'wrong'}", hit, shots)

    pos_title = f"pos-same: its class under {pos_same[1]} (as the query), the other classes under {pos_same[2]}"
    neg_title = f"neg-same: its class under {neg_same[1]}, the other classes under {neg_same[2]} (as the query)"
    entries = tuple(
        Entry(Shot.of(records["val", val.image_ids[query]], test, (names[int(val.labels[query])],)), None,
              (strip("pos-same", pos_title, pos_same, query), strip("neg-same", neg_title, neg_same, query)))
        for query in chosen
    )
    legend = (f"Each query (under {test}) with its {outcome.k} nearest train images in two databases, best first; a green frame "
              "marks a neighbour of the query's class. Both databases hold the same images: only which ones share the query's "
              "processing changes. An encoder that encodes the processing pulls whatever shares it closer, so the neighbours "
              "switch class with the processing.")
    return Gallery(size, interpolation, processing_seed, legend, entries)


def execute(request: RunRequest) -> list[Path]:
    """Extract what is missing, compute each encoder's cell, skip cells already stored."""
    group, seeds, backend = request.value(GROUP), request.value(SEEDS), request.value(BACKEND)
    resampled = resampling(request, "val image")
    classes = processing.group(group)
    dataset, k = knn_dataset(request, NAME)

    records = {(record.split, record.image_id): record for record in dataset.listing.records}

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train = store.split_vectors(key, spec.name, "train", classes)
        val = store.split_vectors(key, spec.name, "val", classes)
        outcome = run(train, val, classes, k=k, seeds=range(seeds), backend=backend, keep=gallery_triples(classes))
        seed = int(store.fingerprint(key, spec.name).get("processing_seed", 0))
        shown = gallery(outcome, train, val, records, spec.input_size, spec.interpolation, seed)
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
                "gallery": shown.as_json(),
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


def rule(cells: list[dict[str, Any]]) -> str:
    """How the board's numbers were aggregated, with its own k, classes and seeds."""
    count = len(cells[0].get("detail", {}).get("classes", ()))
    classes, pairs = (str(count), str(count * (count - 1))) if count else ("K", "K(K−1)")
    return (f"knn_acc1 (%): unweighted {results.setting(cells, 'k')}-NN vote, database = train, queries = val. all-same: mean "
            f"over the {classes} query processings t; all-diff / pos-same / neg-same: mean over the {pairs} "
            f"ordered pairs (t, o≠t); uniform: mean over {classes} query processings × {results.setting(cells, 'seeds')} seeds, "
            "database images each under a random class. pos−neg = pos-same − neg-same. " + bootstrap.rule("val image", cells))


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
    rule=rule,
    options=(GROUP, K, SEEDS, BACKEND, BOOTSTRAP),
    figures=figures,
    trace=Trace("pos−neg", "gap_pos_minus_neg"),
)
