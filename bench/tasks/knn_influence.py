"""kNN "processing influence" (docs/protocol.md#knn-influence): semantic kNN accuracy when the database is
processed like the query, unlike it, or mixed by semantic relation to the query.

For query processing t, the top-k over "label == y under p" and over "label != y under n" are
independent, so K x K class-restricted neighbour lists are computed once and merged for each
(t, p, n) triple instead of running K^3 searches over per-query mixed databases.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from bench import bootstrap, data, exact_search, knn, measures, processing, results, versioned_search
from bench.data import ImageRecord
from bench.encoders.spec import EncoderSpec
from bench.exact_search import Neighbours, rank_order
from bench.knn import class_count, correct
from bench.picks import Entry, Picks, Shot, Strip, pick
from bench.seeding import uniform_choice
from bench.tasks.options import BACKEND, BOOTSTRAP, GROUP, PERMUTATIONS, SEARCH, SEEDS, K, inference, knn_k
from bench.tasks.spec import Column, Inputs, TaskSpec, Trace, Work
from bench.vectors import SplitVectors

NAME = "knn-influence"
GAP = "gap_pos_minus_neg"
SETUPS = ("all_same", "all_diff", "pos_same", "neg_same", "uniform")
UNIFORM_PURPOSE = "knn-uniform"
GALLERY_QUERIES = 2  # queries shown per encoder in the report
GALLERY_SEED = 0
MERGE_ENTRIES = 1 << 22  # (lists × queries × k × k) comparisons held at once when merging


@dataclass(frozen=True)
class KnnInfluence:
    classes: tuple[str, ...]  # processing classes of the group, in label order
    k: int
    triples: dict[tuple[str, str, str], float]  # (test, pos, neg) -> knn_acc1 in %
    uniform: dict[tuple[str, int], float]  # (test, seed) -> knn_acc1 in %
    num_classes: int
    triple_hits: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)  # per query: voted right
    uniform_hits: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    neighbours: dict[tuple[str, str, str], Neighbours] = field(default_factory=dict)  # merged top-k of the kept triples

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

    def metrics(self) -> dict[str, float]:
        setups = self.setups()
        return {**{f"knn_acc1.{name}": value for name, value in setups.items()},
                "gap_pos_minus_neg": setups["pos_same"] - setups["neg_same"], "chance": 100.0 / self.num_classes}


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def merge(positives: Neighbours, negatives: Neighbours, k: int) -> np.ndarray:
    """Top-k rows of the union of two neighbour lists, by (score desc, row asc)."""
    return merge_scored(positives, negatives, k).rows


def merge_scored(positives: Neighbours, negatives: Neighbours, k: int) -> Neighbours:
    """`merge` with the scores: what a gallery shows beside each neighbour."""
    scores = np.concatenate([positives.scores, negatives.scores], axis=1)
    rows = np.concatenate([positives.rows, negatives.rows], axis=1)
    order = rank_order(scores, rows)[:, :k]
    return Neighbours(np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1))


def merged_hits(same: Sequence[Neighbours], other: Sequence[Neighbours], database_labels: np.ndarray,
                query_labels: np.ndarray, k: int) -> np.ndarray:
    """(P, N, queries) bool: whether the vote of `merge(same[p], other[n], k)` names each query's
    label (labels 0, 1, ...), for every pair at once and without building the merged lists.

    Every row of a "same" list has the query's label and no row of an "other" list has it, so
    the merged vote is settled by two numbers: a, the "same" rows among the merged top-k (their
    label's count), and the best count among the first k - a rows of the "other" list, with the
    lowest label that reaches it (the vote's ties go to the lowest label)."""
    same_scores, same_rows = np.stack([found.scores for found in same]), np.stack([found.rows for found in same])
    other_scores, other_rows = np.stack([found.scores for found in other]), np.stack([found.rows for found in other])
    other_labels = np.where(other_rows >= 0, database_labels[np.maximum(other_rows, 0)], -1)
    query_labels = np.asarray(query_labels)
    hits = np.empty((len(same), len(other), len(query_labels)), dtype=bool)
    step = max(1, MERGE_ENTRIES // max(1, len(other) * k * k))
    for first in range(0, len(query_labels), step):
        part = slice(first, first + step)
        taken = _same_taken(same_scores[:, part], same_rows[:, part], other_scores[:, part], other_rows[:, part], k)
        best, lowest = _prefix_votes(other_labels[:, part])
        rest = (k - taken)[..., None]
        best = np.take_along_axis(best[None], rest, axis=-1)[..., 0]
        lowest = np.take_along_axis(lowest[None], rest, axis=-1)[..., 0]
        labels = query_labels[part]
        lowest = np.where(best > 0, lowest, np.where(labels == 0, 1, 0))  # no other label counted: each has 0
        hits[:, :, part] = (taken > best) | ((taken == best) & (labels < lowest))
    return hits


def _same_taken(same_scores: np.ndarray, same_rows: np.ndarray, other_scores: np.ndarray, other_rows: np.ndarray, k: int) -> np.ndarray:
    """(P, N, Q): how many rows of same[p] the merged top-k of (same[p], other[n]) takes. A row
    of a list sorted by (score desc, row asc) is taken when its place in its own list plus the
    rows of the other list ranked before it is below k."""
    place = np.arange(same_scores.shape[-1])
    taken = np.empty((len(same_scores), len(other_scores), same_scores.shape[1]), dtype=np.int64)
    others, other_at = other_scores[:, :, None, :], other_rows[:, :, None, :]
    for p in range(len(same_scores)):
        scores, rows = same_scores[p][None, :, :, None], same_rows[p][None, :, :, None]
        before = (others > scores) | ((others == scores) & (other_at < rows))  # (N, Q, k, k); padding is never before
        kept = (rows[..., 0] >= 0) & (place + before.sum(axis=-1) < k)
        taken[p] = kept.sum(axis=-1)
    return taken


def _prefix_votes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every prefix length j = 0..k of each list of neighbour labels (-1: none): the largest
    count of one label among its first j entries and the lowest label with that count (-1 when
    no label is counted)."""
    k = labels.shape[-1]
    valid = labels >= 0
    equal = (labels[..., :, None] == labels[..., None, :]) & valid[..., :, None]  # [i, i']: entry i' has i's label
    counts = np.cumsum(equal, axis=-1, dtype=np.int32).swapaxes(-1, -2)  # [j, i]: i's label among entries 0..j
    counts = np.where(np.arange(k)[None, :] <= np.arange(k)[:, None], counts, 0)  # only entries inside the prefix
    best = counts.max(axis=-1)
    tied = (counts == best[..., None]) & (best[..., None] > 0)
    lowest = np.where(tied, labels[..., None, :], np.iinfo(np.int64).max).min(axis=-1)
    lowest = np.where(best > 0, lowest, -1)
    start = np.zeros(labels.shape[:-1] + (1,), dtype=np.int64)
    return np.concatenate([start, best], axis=-1), np.concatenate([start - 1, lowest], axis=-1)


def run(
    train: SplitVectors,
    val: SplitVectors,
    classes: Sequence[str],
    *,
    k: int = 10,
    seeds: Sequence[int] = tuple(range(10)),
    search: str = "versioned",
    backend: str = "auto",
    keep: Sequence[tuple[str, str, str]] = (),
    in_place: bool = False,
) -> KnnInfluence:
    """All K^3 (test, pos, neg) triples and the uniform setup for one processing group.

    Per query processing t, one search of the K database versions gives the top-k of every
    version among the query's class ("same") and among the other classes ("other"), and the
    top-k of every seed's mixed database; each (p, n) triple merges "same" under p with
    "other" under n, which is exactly the top-k of the per-query mixed database. The merged
    neighbours (rows and scores) of the triples in `keep` are kept, for a gallery.
    `in_place`: L2-normalise the train vectors where they lie instead of into a copy of all
    K versions, for a caller that reads them no more (mitigate's processing probe normalises
    the same vectors again afterwards, so it keeps the default)."""
    num_classes = class_count(train, val)
    seeds = list(seeds)
    mixes = [uniform_choice(seed, train.image_ids, len(classes), UNIFORM_PURPOSE) for seed in seeds]
    database = versioned_search.build([train.vectors[name] for name in classes], train.labels, search, backend, in_place=in_place)
    triple_hits: dict[tuple[str, str, str], np.ndarray] = {}
    uniform_hits: dict[tuple[str, int], np.ndarray] = {}
    kept: dict[tuple[str, str, str], Neighbours] = {}
    for test in classes:
        found = database.search(val.vectors[test], val.labels, k, mixes)
        hits = merged_hits(found.same, found.other, train.labels, val.labels, k)
        for (i, p), (j, n) in itertools.product(enumerate(classes), repeat=2):
            triple_hits[test, p, n] = hits[i, j]
            if (test, p, n) in keep:
                kept[test, p, n] = merge_scored(found.same[i], found.other[j], k)
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


def picks(outcome: KnnInfluence, train: SplitVectors, val: SplitVectors, records: Mapping[tuple[str, str], ImageRecord],
          spec: EncoderSpec, count: int = GALLERY_QUERIES) -> Picks:
    """A few queries with their k neighbours in the pos-same and neg-same databases of
    `gallery_triples`, chosen by (seed, image id), with one whose vote differs between the two
    when there is such a query. `records`: the dataset's records by (split, image_id)."""
    pos_same, neg_same = gallery_triples(outcome.classes)
    test = pos_same[0]
    names = {record.label: record.label_name for record in records.values()}
    flips = outcome.triple_hits[pos_same] != outcome.triple_hits[neg_same]
    chosen = pick(list(val.image_ids), count, flips, GALLERY_SEED, "knn-gallery")

    def strip(name: str, triple: tuple[str, str, str], query: int) -> Strip:
        found = outcome.neighbours[triple]
        label = val.labels[query]
        rows = [int(row) for row in found.rows[query] if row >= 0]
        shots = tuple(
            Shot.of(records["train", train.image_ids[row]], triple[1] if train.labels[row] == label else triple[2],
                    (names[int(train.labels[row])],), rank=rank, score=float(score), target=bool(train.labels[row] == label))
            for rank, (row, score) in enumerate(zip(rows, found.scores[query]), start=1)
        )
        voted = int(knn.vote(train.labels[rows][None], outcome.num_classes)[0])
        return Strip(name, bool(outcome.triple_hits[triple][query]), shots, fact=names[voted])

    entries = tuple(
        Entry(Shot.of(records["val", val.image_ids[query]], test, (names[int(val.labels[query])],)), None,
              (strip("pos-same", pos_same, query), strip("neg-same", neg_same, query)))
        for query in chosen
    )
    return Picks(spec.input_size, spec.interpolation, entries)


@dataclass(frozen=True)
class KnnSettings:
    classes: tuple[str, ...]
    k: int
    seeds: tuple[int, ...]
    search: str
    backend: str
    inference: bootstrap.Resampling | None = None  # the gap's interval and test (None: neither)


@dataclass(frozen=True)
class KnnOutcome:
    """One encoder's knn-influence: every triple and draw, and its gallery."""

    found: KnnInfluence
    settings: KnnSettings
    images: tuple[int, int]  # (train, val)
    shown: Picks
    gap: measures.Effect | None = None  # pos−neg with its interval and test (bench.measures.knn_gap)

    def metrics(self) -> dict[str, float]:
        return self.found.metrics()

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        """pos−neg with its interval (units redrawn in train and val together) and its permutation test."""
        points = {GAP: self.found.metrics()[GAP]}
        if self.gap is None:
            return bootstrap.Resampled({}, points, self.images[1])
        samples = {GAP: self.gap.samples} if self.gap.samples is not None else {}
        return bootstrap.Resampled(samples, points, self.images[1], {GAP: self.gap.test})

    def detail(self) -> dict[str, Any]:
        found = self.found
        return {
            "classes": list(self.settings.classes),
            "triples": [{"test": t, "pos": p, "neg": n, "knn_acc1": acc} for (t, p, n), acc in found.triples.items()],
            "uniform": [{"test": t, "seed": s, "knn_acc1": acc} for (t, s), acc in found.uniform.items()],
            "train_images": self.images[0],
            "val_images": self.images[1],
        }

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": versioned_search.describe(self.settings.search, self.settings.backend),
            "seeds": list(self.settings.seeds),
            "uniform_assignment": f"uniform_choice(seed, image_id, {len(self.settings.classes)}, {UNIFORM_PURPOSE!r})",
        }

    def picks(self) -> Picks:
        return self.shown


def work(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    group, seeds = options[GROUP.name], options[SEEDS.name]
    classes = processing.group(group)
    k = knn_k(NAME, options, dataset)
    settings = KnnSettings(classes, k, tuple(range(seeds)), options[SEARCH.name], exact_search.resolve_backend(options[BACKEND.name]),
                        inference(options, dataset))
    return Work(results.condition(group=group, k=k, seeds=seeds), classes, ("train", "val"), settings, unit=dataset.unit_name)


def measure(inputs: Inputs) -> KnnOutcome:
    """Every triple and uniform draw, and the gallery's queries."""
    settings: KnnSettings = inputs.settings
    train, val = inputs.vectors["train"], inputs.vectors["val"]
    found = run(train, val, settings.classes, k=settings.k, seeds=settings.seeds, search=settings.search, backend=settings.backend,
                keep=gallery_triples(settings.classes), in_place=True)  # normalised where they lie: the gap's test reads unit vectors
    records = {(record.split, record.image_id): record for record in inputs.dataset.listing.records}
    shown = picks(found, train, val, records, inputs.encoder)
    return KnnOutcome(found, settings, (len(train.image_ids), len(val.image_ids)), shown, gap_effect(train, val, inputs.dataset, settings))


def gap_effect(train: SplitVectors, val: SplitVectors, dataset: data.ResolvedDataset, settings: KnnSettings) -> measures.Effect | None:
    """pos−neg's interval and test on the vectors as stored (L2-normalised by bench.measures)."""
    if settings.inference is None:
        return None
    resampling = settings.inference
    return measures.knn_gap([train.vectors[name] for name in settings.classes], train.labels,
                            [val.vectors[name] for name in settings.classes], val.labels, settings.k,
                            train_units=dataset.units(train.image_ids), val_units=dataset.units(val.image_ids),
                            permutations=resampling.permutations, resampling=resampling)


TASK = TaskSpec(
    name=NAME,
    description="kNN accuracy when the database is processed like / unlike the query (paper §7)",
    work=work,
    measure=measure,
    columns=(
        Column("all-same", "knn_acc1.all_same", follow_up="SP"),
        Column("all-diff", "knn_acc1.all_diff"),
        Column("pos-same", "knn_acc1.pos_same"),
        Column("neg-same", "knn_acc1.neg_same"),
        Column("uniform", "knn_acc1.uniform"),
        Column("pos−neg", "gap_pos_minus_neg", interval=True, follow_up="SPD", absolute=True),
        Column("chance", "chance"),
    ),
    options=(GROUP, K, SEEDS, SEARCH, BACKEND, BOOTSTRAP, PERMUTATIONS),
    trace=Trace("pos−neg", GAP, words="pos−neg"),
    view="bench.report.knn_influence",
)
