"""bench.measures on small synthetic arrays: the numbers the tasks report, against the tasks and
brute force (tie-aware); p-values that hold their level on nulls as users meet them (exchangeable
versions, tiny classes, exchangeable shots) and fall under planted traces; percentile intervals of
unit resamples; false-discovery control on boards and in the trace ranking; --groups."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import __main__ as cli
from bench import boards as stored, data, measures, ranking, results
from bench.report import leaderboard
from bench.bootstrap import Resampling, counts, percentile_interval
from bench.data import DatasetOptions
from bench.errors import DataError
from bench.tasks import knn_influence, paircams, similarity
from bench.vectors import SplitVectors, normalise

pytestmark = pytest.mark.usefixtures("single_thread")

NULL_REPLICATES = 200
LEVEL = 0.05
ALLOWED = LEVEL + 3 * np.sqrt(LEVEL * (1 - LEVEL) / NULL_REPLICATES)  # the level plus three Monte-Carlo errors
NONE = Resampling(0)


# ---------------------------------------------------------------------------------------------
# Worlds
# ---------------------------------------------------------------------------------------------


def grid_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    """Unit vectors with four entries ±0.5 in 8 dimensions: every cosine is a multiple of 0.25,
    exact in float32 whatever the order of the sums, so ties are ties on every code path."""
    out = np.zeros((count, 8), dtype=np.float32)
    for row in out:
        row[rng.choice(8, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return out


World = tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]  # train versions, train labels, val versions, val labels


def versions_world(rng: np.random.Generator, *, classes: int = 3, train: int = 24, val: int = 12, dim: int = 8, versions: int = 3,
                   spread: float = 0.6, trace: float = 0.0, grid: bool = False) -> World:
    """Images around class centres, each under `versions` versions: i.i.d. noise around the image
    (exchangeable: no version effect) plus, with `trace`, an offset shared by every image under
    that version. `grid`: every vector drawn from the grid instead, with duplicated train rows."""
    if grid:
        train_vectors = [grid_vectors(rng, train) for _ in range(versions)]
        for vectors in train_vectors:
            vectors[train // 2:] = vectors[: train - train // 2]  # every row of the second half repeats one of the first
        train_labels = rng.integers(0, classes, train)
        return train_vectors, train_labels, [grid_vectors(rng, val) for _ in range(versions)], rng.integers(0, classes, val)
    centres = rng.normal(size=(classes, dim))
    offsets = trace * rng.normal(size=(versions, dim))

    def split(count: int) -> tuple[list[np.ndarray], np.ndarray]:
        labels = np.arange(count) % classes
        images = centres[labels] + rng.normal(size=(count, dim))
        return [(images + offsets[v] + spread * rng.normal(size=(count, dim))).astype(np.float32) for v in range(versions)], labels

    (train_vectors, train_labels), (val_vectors, val_labels) = split(train), split(val)
    return train_vectors, train_labels, val_vectors, val_labels


def as_split(vectors: list[np.ndarray], labels: np.ndarray, prefix: str) -> SplitVectors:
    names = [f"v{v}" for v in range(len(vectors))]
    return SplitVectors(np.array([f"{prefix}{i:03d}" for i in range(len(labels))]), np.asarray(labels, dtype=np.int64),
                        {name: vectors[v].copy() for v, name in enumerate(names)})


def pairs_world(rng: np.random.Generator, subjects: int = 14, dim: int = 8, spread: float = 0.8,
                trace: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Each subject's two shots, i.i.d. noise around the subject (exchangeable), plus with `trace`
    an offset of each camera class."""
    scenes = rng.normal(size=(subjects, dim))
    offsets = trace * rng.normal(size=(2, dim))
    return tuple(scenes + offsets[c] + spread * rng.normal(size=(subjects, dim)) for c in range(2))  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Brute force
# ---------------------------------------------------------------------------------------------


def weighted_vote(scores: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int) -> int:
    """The label of a k-NN vote where row j fills weights[j] places: rows by score, ties by the
    lower row; a vote tie goes to the lowest label."""
    places: list[int] = []
    for row in sorted(range(len(scores)), key=lambda j: (-scores[j], j)):
        places += [int(labels[row])] * int(weights[row])
        if len(places) >= k:
            break
    return int(np.argmax(np.bincount(places[:k], minlength=int(labels.max()) + 1)))


def brute_gap(train: list[np.ndarray], train_labels: np.ndarray, val: list[np.ndarray], val_labels: np.ndarray, k: int,
              query_versions: np.ndarray, database_versions: np.ndarray, weights: np.ndarray, query_weights: np.ndarray) -> float:
    """pos-same − neg-same (%) voted query by query over the whole database."""
    train, val = [normalise(v) for v in train], [normalise(v) for v in val]
    rows = np.arange(len(train_labels))
    per_query = []
    for query, label in enumerate(val_labels):
        differences = []
        for test, other in itertools.permutations(range(len(train)), 2):
            hits = []
            for positive, negative in ((test, other), (other, test)):  # pos-same, then neg-same
                stored_version = database_versions[rows, np.where(train_labels == label, positive, negative)]
                database = np.stack([train[version][row] for row, version in zip(rows, stored_version)])
                scores = database @ val[query_versions[query, test]][query]
                hits.append(weighted_vote(scores, weights, train_labels, k) == label)
            differences.append(float(hits[0]) - float(hits[1]))
        per_query.append(np.mean(differences))
    return float(100.0 * np.average(per_query, weights=query_weights))


def identity_versions(count: int, versions: int) -> np.ndarray:
    return np.tile(np.arange(versions), (count, 1))


# ---------------------------------------------------------------------------------------------
# The array API computes what the tasks report
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [False, True], ids=["continuous", "ties-and-duplicates"])
def test_knn_gap_is_knn_influence_gap_and_resamples_of_all_ones_give_it_back(grid: bool) -> None:
    rng = np.random.default_rng(1)
    train, train_labels, val, val_labels = versions_world(rng, trace=0.8, grid=grid)
    names = tuple(f"v{v}" for v in range(len(train)))
    for k in (1, 4):
        task = knn_influence.run(as_split(train, train_labels, "t"), as_split(val, val_labels, "v"), names, k=k, seeds=(0,),
                                 backend="torch")
        found = measures.knn_gap(train, train_labels, val, val_labels, k, permutations=0, resampling=NONE)
        assert found.value == pytest.approx(task.metrics()["gap_pos_minus_neg"], abs=1e-9)
        assert found.interval is None and found.test.p is None and not found.marked
        scores = measures.knn_scores(train, train_labels, val, val_labels, k)
        ones = scores.resampled_gaps(np.ones((2, len(train_labels)), dtype=np.int64), np.ones((2, len(val_labels))))
        assert ones == pytest.approx([found.value, found.value], abs=1e-9)


@pytest.mark.parametrize("grid", [False, True], ids=["continuous", "ties-and-duplicates"])
def test_weighted_and_permuted_knn_gap_equals_a_brute_force_vote(grid: bool) -> None:
    rng = np.random.default_rng(2)
    train, train_labels, val, val_labels = versions_world(rng, classes=3, train=20, val=8, versions=3, trace=0.5, grid=grid)
    count, queries, versions = len(train_labels), len(val_labels), len(train)
    k = 3
    scores = measures.knn_scores(train, train_labels, val, val_labels, k)
    for trial in range(4):
        weights = np.bincount(rng.integers(0, count, count), minlength=count)  # a bootstrap draw: rows counted 0, 1, 2… times
        query_weights = np.bincount(rng.integers(0, queries, queries), minlength=queries).astype(np.float64)
        query_versions = np.argsort(rng.random((queries, versions)), axis=1)
        database_versions = np.argsort(rng.random((count, versions)), axis=1)
        expected = brute_gap(train, train_labels, val, val_labels, k, query_versions, database_versions, weights, query_weights)
        assert scores.gap(query_versions, database_versions, weights, query_weights) == pytest.approx(expected, abs=1e-9), trial
        plain = brute_gap(train, train_labels, val, val_labels, k, identity_versions(queries, versions),
                          identity_versions(count, versions), weights, query_weights)
        resampled = scores.resampled_gaps(weights[None, :], query_weights[None, :])
        assert resampled == pytest.approx([plain], abs=1e-9), trial


def test_similarity_shifts_are_the_similarity_task_shifts() -> None:
    rng = np.random.default_rng(3)
    train, train_labels, val, val_labels = versions_world(rng, classes=4, train=30, val=10, versions=2, trace=0.4)
    found = similarity.distributions(val[0], val_labels, train[0], train[1], train_labels).metrics()
    shifts = measures.similarity_shifts(train, train_labels, val, val_labels, permutations=0, resampling=NONE)
    assert set(shifts) == set(measures.SHIFTS)
    for name, effect in shifts.items():
        assert effect.value == pytest.approx(found[name], abs=1e-6)


@pytest.mark.parametrize("grid", [False, True], ids=["continuous", "ties"])
def test_paircams_gap_is_the_paircams_task_gap(grid: bool) -> None:
    rng = np.random.default_rng(4)
    if grid:
        first, second = grid_vectors(rng, 16), grid_vectors(rng, 16)
    else:
        first, second = pairs_world(rng, subjects=16, trace=0.6)
    subjects = np.concatenate([np.arange(16), np.arange(16)])
    cameras = np.repeat([0, 1], 16)
    task = paircams.recall_at_1(np.concatenate([first, second]), subjects, cameras).metrics()
    found = measures.paircams_gap(first, second, permutations=0, resampling=NONE)
    assert found.value == pytest.approx(task["gap_same_minus_different"], abs=1e-9)


def test_probe_accuracies_are_plain_accuracies() -> None:
    rng = np.random.default_rng(5)
    versions, images = 3, 10
    predictions = rng.integers(0, versions, (2, versions * images))
    truth = np.repeat(np.arange(versions), images)  # row v · images + i is image i under version v
    found = measures.processing_probe_accuracy(predictions, versions, permutations=0, resampling=NONE)
    assert found.value == pytest.approx(100.0 * np.mean(predictions == truth))
    assert found.test.reference == pytest.approx(100.0 / versions)

    labels = np.array([0, 0, 0, 0, 2, 2, 3, 5, 5, 5])  # classes 1 and 4 absent
    named = np.array([0, 1, 0, 4, 2, 0, 3, 5, 1, 5])
    effects = measures.label_probe_accuracy(named, labels, permutations=0, resampling=NONE)
    assert effects["probe_acc1"].value == pytest.approx(100.0 * np.mean(named == labels))
    per_class = [np.mean(named[labels == c] == c) for c in np.unique(labels)]
    assert effects["probe_mean_class_acc"].value == pytest.approx(100.0 * np.mean(per_class))
    assert effects["probe_acc1"].test.reference == pytest.approx(40.0)  # the majority share
    assert effects["probe_mean_class_acc"].test.reference == pytest.approx(25.0)  # chance over the 4 classes present


# ---------------------------------------------------------------------------------------------
# p-values under nulls and under planted traces
# ---------------------------------------------------------------------------------------------


def false_mark_rate(p_values: list[float | None]) -> float:
    assert all(p is not None for p in p_values)
    return float(np.mean([p <= LEVEL for p in p_values]))  # type: ignore[operator]


def test_knn_gap_holds_its_level_on_exchangeable_versions_and_finds_a_planted_trace() -> None:
    rng = np.random.default_rng(6)
    p_values, moved = [], 0
    for replicate in range(NULL_REPLICATES):
        train, train_labels, val, val_labels = versions_world(rng, classes=3, train=15, val=9, dim=6, versions=2, spread=0.7)
        found = measures.knn_gap(train, train_labels, val, val_labels, 3, permutations=19, resampling=NONE, seed=replicate)
        p_values.append(found.test.p)
        scores = measures.knn_scores(train, train_labels, val, val_labels, 3)
        swapped = scores.gap(np.argsort(rng.random((9, 2)), axis=1), np.argsort(rng.random((15, 2)), axis=1))
        moved += swapped != found.value
    assert moved > NULL_REPLICATES / 2  # the statistic moves under the permutations: the check can fail
    assert false_mark_rate(p_values) <= ALLOWED

    train, train_labels, val, val_labels = versions_world(np.random.default_rng(7), classes=3, train=30, val=15, dim=6, versions=2,
                                                          spread=0.3, trace=1.5)
    planted = measures.knn_gap(train, train_labels, val, val_labels, 3, permutations=99, resampling=NONE)
    assert planted.value > 0 and planted.test.p <= 0.02 and planted.marked


def test_label_probe_holds_its_level_on_tiny_classes_and_a_constant_probe_is_never_marked() -> None:
    rng = np.random.default_rng(8)
    p_top1, p_class, constant_marked, moved = [], [], 0, 0
    for replicate in range(NULL_REPLICATES):
        sizes = rng.integers(1, 5, 6)  # six classes of 1 to 4 test images
        labels = np.repeat(np.arange(6), sizes)
        rng.shuffle(labels)
        favoured = rng.dirichlet(np.ones(6))  # a probe with its own taste, blind to the images' labels
        predictions = rng.choice(6, len(labels), p=favoured)
        found = measures.label_probe_accuracy(predictions, labels, permutations=19, resampling=NONE, seed=replicate)
        p_top1.append(found["probe_acc1"].test.p)
        p_class.append(found["probe_mean_class_acc"].test.p)
        moved += found["probe_mean_class_acc"].test.p < 1.0
        largest = np.full(len(labels), np.argmax(sizes))
        constant = measures.label_probe_accuracy(largest, labels, permutations=19, resampling=NONE, seed=replicate)
        constant_marked += any(effect.marked for effect in constant.values())
        assert all(effect.test.p == 1.0 for effect in constant.values())  # every permutation scores it the same
    assert moved > NULL_REPLICATES / 2
    assert constant_marked == 0
    assert false_mark_rate(p_top1) <= ALLOWED and false_mark_rate(p_class) <= ALLOWED

    labels = np.repeat(np.arange(6), 4)
    knowing = np.where(np.random.default_rng(9).random(len(labels)) < 0.8, labels, (labels + 1) % 6)
    planted = measures.label_probe_accuracy(knowing, labels, permutations=99, resampling=NONE)
    assert all(effect.test.p == pytest.approx(0.01) and effect.marked for effect in planted.values())


def test_processing_probe_holds_its_level_when_versions_are_exchangeable_and_finds_a_planted_trace() -> None:
    rng = np.random.default_rng(10)
    versions, images, probes = 3, 8, 2
    p_values, moved = [], 0
    for replicate in range(NULL_REPLICATES):
        # each image leans towards some version whatever version it is under: no trace, but images differ
        leaning = rng.dirichlet(np.ones(versions) * 0.5, images)
        predictions = np.stack([np.concatenate([[rng.choice(versions, p=leaning[i]) for i in range(images)] for _ in range(versions)])
                                for _ in range(probes)])
        found = measures.processing_probe_accuracy(predictions, versions, permutations=19, resampling=NONE, seed=replicate)
        p_values.append(found.test.p)
        moved += found.test.p < 1.0
    assert moved > NULL_REPLICATES / 2
    assert false_mark_rate(p_values) <= ALLOWED

    truth = np.repeat(np.arange(versions), images)
    knowing = np.stack([np.where(rng.random(len(truth)) < 0.7, truth, rng.integers(0, versions, len(truth))) for _ in range(probes)])
    planted = measures.processing_probe_accuracy(knowing, versions, permutations=99, resampling=NONE)
    assert planted.test.p == pytest.approx(0.01) and planted.marked


def test_paircams_gap_holds_its_level_on_exchangeable_shots_and_finds_a_planted_camera() -> None:
    rng = np.random.default_rng(11)
    p_values, moved = [], 0
    for replicate in range(NULL_REPLICATES):
        first, second = pairs_world(rng, subjects=10, dim=6, spread=0.8)
        found = measures.paircams_gap(first, second, permutations=19, resampling=NONE, seed=replicate)
        p_values.append(found.test.p)
        moved += found.test.p < 1.0
    assert moved > NULL_REPLICATES / 2
    assert false_mark_rate(p_values) <= ALLOWED

    first, second = pairs_world(np.random.default_rng(12), subjects=30, dim=6, spread=0.6, trace=1.5)
    planted = measures.paircams_gap(first, second, permutations=99, resampling=NONE)
    assert planted.value < 0 and planted.test.alternative == measures.LESS and planted.test.p <= 0.02 and planted.marked


def test_permutation_p_counts_ties_against_the_effect() -> None:
    assert measures.permutation_p(2.0, np.array([1.0, 2.0, 3.0]), measures.GREATER) == pytest.approx(3 / 4)
    assert measures.permutation_p(2.0, np.array([1.0, 2.0, 3.0]), measures.LESS) == pytest.approx(3 / 4)
    assert measures.permutation_p(5.0, np.array([1.0, 2.0]), measures.GREATER) == pytest.approx(1 / 3)
    assert measures.permutation_p(5.0, np.full(9, 5.0), measures.GREATER) == 1.0


# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------


def test_accuracy_intervals_stay_within_0_and_100_and_hold_the_point() -> None:
    rng = np.random.default_rng(13)
    labels = np.repeat(np.arange(5), [1, 2, 3, 4, 2])
    for predictions in (labels.copy(), (labels + 1) % 5, np.where(rng.random(len(labels)) < 0.9, labels, 0)):
        for effect in measures.label_probe_accuracy(predictions, labels, permutations=0, resampling=Resampling(300)).values():
            low, high = effect.interval
            assert 0.0 <= low <= effect.value <= high <= 100.0
            assert (effect.samples >= 0).all() and (effect.samples <= 100).all()
    truth = np.repeat(np.arange(3), 6)
    for predictions in (truth[None, :], ((truth + 1) % 3)[None, :], np.where(rng.random((2, 18)) < 0.95, truth, 0)):
        effect = measures.processing_probe_accuracy(predictions, 3, permutations=0, resampling=Resampling(300))
        assert 0.0 <= effect.interval[0] <= effect.value <= effect.interval[1] <= 100.0


def test_a_unit_is_resampled_whole() -> None:
    """Each unit's five items are one image seen five times: the spread is that of the units."""
    rng = np.random.default_rng(14)
    per_unit = rng.random(12) * 100
    units = np.repeat([f"photo{u:02d}" for u in range(12)], 5)  # codes in the order of per_unit
    resampling = Resampling(400)
    whole = measures.unit_means({"x": np.repeat(per_unit, 5)}, units, resampling)["x"]
    once = measures.unit_means({"x": per_unit}, None, resampling)["x"]
    assert whole == pytest.approx(once)  # the same draws of 12 units
    items = measures.unit_means({"x": np.repeat(per_unit, 5)}, None, resampling)["x"]
    assert np.std(items) < 0.6 * np.std(whole)  # resampling the 60 items would claim √5 times too much precision

    # a probe's test permutes and redraws a unit's images together: five copies of each image change nothing
    labels = np.repeat(np.arange(4), 3)
    predictions = np.where(rng.random(12) < 0.6, labels, (labels + 1) % 4)
    alone = measures.label_probe_accuracy(predictions, labels, permutations=99, resampling=Resampling(200))
    copies = measures.label_probe_accuracy(np.repeat(predictions, 5), np.repeat(labels, 5), units=np.repeat(np.arange(12), 5),
                                           permutations=99, resampling=Resampling(200))
    for name, effect in alone.items():
        assert copies[name].value == pytest.approx(effect.value) and copies[name].test.p == effect.test.p
        assert copies[name].samples == pytest.approx(effect.samples)
    spanning = measures.label_probe_accuracy(predictions, labels, units=np.zeros(12), permutations=9, resampling=NONE)
    assert all(effect.test.p is None and "several classes" in effect.test.reason for effect in spanning.values())


def test_paircams_resamples_redraw_the_subjects_of_a_unit_together() -> None:
    rng = np.random.default_rng(16)
    first, second = pairs_world(rng, subjects=12, trace=0.4)
    units = np.arange(12) // 3  # four photos, three subjects shot from each
    subjects, cameras = np.concatenate([np.arange(12), np.arange(12)]), np.repeat([0, 1], 12)
    resampling = Resampling(30)
    found = paircams.recall_at_1(np.concatenate([first, second]), subjects, cameras).resample(resampling, units)
    by_camera = [normalise(first), normalise(second)]
    drawn = next(counts(4, resampling))
    for r in (0, 5, 17):
        copies = drawn[r][units].astype(int)  # a subject comes as often as its photo
        queries, present = np.repeat(np.arange(12), copies), np.flatnonzero(copies)
        gaps = []
        for camera in (0, 1):
            own, partners = by_camera[camera], by_camera[1 - camera]
            recalls = [np.mean([all(own[i] @ partners[i] > own[i] @ pool[j] for j in present if j != i) for i in queries])
                       for pool in (own, partners)]
            gaps.append(100.0 * (recalls[0] - recalls[1]))
        assert found.samples["gap_same_minus_different"][r] == pytest.approx(np.mean(gaps), abs=1e-9), r


def test_knn_gap_interval_redraws_units_of_train_and_val_together() -> None:
    rng = np.random.default_rng(15)
    train, train_labels, val, val_labels = versions_world(rng, classes=3, train=18, val=9, versions=2, trace=0.6)
    train_units = [f"photo{i % 6}" for i in range(18)]
    val_units = [f"photo{i % 6}" for i in range(9)]
    resampling = Resampling(50)
    found = measures.knn_gap(train, train_labels, val, val_labels, 3, train_units=train_units, val_units=val_units,
                             permutations=0, resampling=resampling)
    drawn = np.concatenate(list(counts(6, resampling)))  # six photos, shared by both splits
    scores = measures.knn_scores(train, train_labels, val, val_labels, 3)
    for r in (0, 7, 31):
        weights = drawn[r][np.arange(18) % 6].astype(np.int64)
        query_weights = drawn[r][np.arange(9) % 6]
        expected = brute_gap(train, train_labels, val, val_labels, 3, identity_versions(9, 2), identity_versions(18, 2), weights,
                             query_weights)
        assert found.samples[r] == pytest.approx(expected, abs=1e-9)
    assert found.interval == pytest.approx(percentile_interval(found.samples, found.value))
    assert -100.0 <= found.interval[0] <= found.value <= found.interval[1] <= 100.0


# ---------------------------------------------------------------------------------------------
# False-discovery control
# ---------------------------------------------------------------------------------------------


def test_adjust_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.2, None]
    # sorted 0.01, 0.03, 0.04, 0.2 (m = 4): p · m / rank = 0.04, 0.06, 0.0533, 0.2, then the running minimum from the top
    assert measures.adjust(p, "bh") == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2, None])
    harmonic = 1 + 1 / 2 + 1 / 3 + 1 / 4
    assert measures.adjust(p, "by") == pytest.approx([0.04 * harmonic, 0.16 / 3 * harmonic, 0.16 / 3 * harmonic, 0.2 * harmonic, None])
    assert measures.adjust([0.5, 0.9], "by") == [1.0, 1.0]  # capped at 1
    assert measures.adjust(p, "none") == p
    assert measures.adjust([None, None], "bh") == [None, None] and measures.adjust([], "bh") == []
    assert measures.adjust([0.03], "bh") == [0.03]


KNN_METRICS = {**{f"knn_acc1.{name}": 50.0 for name in knn_influence.SETUPS}, "chance": 10.0}
BOARD = {"toy/a": 0.001, "toy/b": 0.03, "toy/c": 0.04, "toy/d": 0.045, "toy/e": 0.6}
# BH over five: 0.005, then 0.045 · 5/4 = 0.05625 for b, c and d (the running minimum), 0.6


def write_cell(results_dir: Path, encoder: str, gap: float, p: float | None, alternative: str = measures.GREATER,
               dataset: str = "toy") -> None:
    test = measures.Test(p, alternative, 0.0, "exact permutation", 99)
    cell = results.Cell(results.CellKey("knn-influence", dataset, encoder, "group=jpeg,k=10,seeds=1"), "cvl", {**KNN_METRICS, "gap_pos_minus_neg": gap},
                        {"gap_pos_minus_neg": (gap - 1.0, gap + 1.0)}, {}, {"gap_pos_minus_neg": test})
    results.write(cell, results_dir)


@pytest.fixture
def board_home(tmp_path: Path) -> Path:
    for number, (encoder, p) in enumerate(BOARD.items()):
        write_cell(tmp_path / "reports" / "results", encoder, 5.0 - number, p)
    return tmp_path


def gap_entries(text: str) -> dict[str, str]:
    """encoder -> its pos−neg entry in a Markdown export."""
    found = {}
    for line in text.splitlines():
        cells = [part.strip() for part in line.strip("|").split("|")]
        if cells and cells[0] in BOARD:
            found[cells[0]] = cells[1 + 5]  # encoder, five accuracies, pos−neg (the family is the heading above)
    return found


def test_a_board_marks_what_passes_benjamini_hochberg_and_exports_both_p_values(board_home: Path) -> None:
    boards, damaged = stored.collect(board_home / "reports" / "results")
    assert not damaged and len(boards) == 1
    (column,) = [column for column in boards[0].task.columns if column.interval]
    marks = leaderboard.board_marks(boards[0])
    assert {encoder: mark.adjusted for (encoder, _), mark in marks.items()} == pytest.approx(
        {"toy/a": 0.005, "toy/b": 0.05625, "toy/c": 0.05625, "toy/d": 0.05625, "toy/e": 0.6})
    entries = gap_entries(leaderboard.export(boards, "markdown"))
    assert {encoder for encoder, entry in entries.items() if entry.endswith("*")} == {"toy/a"}
    unadjusted = gap_entries(leaderboard.export(boards, "markdown", adjust="none"))
    assert {encoder for encoder, entry in unadjusted.items() if entry.endswith("*")} == {"toy/a", "toy/b", "toy/c", "toy/d"}
    rule = leaderboard.rule(boards[0])
    assert "Benjamini–Hochberg" in rule and "board's 5 tests" in rule
    assert "Benjamini–Yekutieli" in leaderboard.rule(boards[0], "by") and "unadjusted" in leaderboard.rule(boards[0], "none")

    rows = {row["encoder"]: row for row in csv.DictReader(io.StringIO(leaderboard.export(boards, "csv")))}
    for encoder, p in BOARD.items():
        assert float(rows[encoder][f"{column.header} p"]) == p
        assert float(rows[encoder][f"{column.header} p_adjusted"]) == pytest.approx(marks[(encoder, column.path)].adjusted)
        assert rows[encoder][f"{column.header} marked"] == str(encoder == "toy/a")
    (record,) = json.loads(leaderboard.export(boards, "json"))["boards"]
    assert record["tests"] == 5 and record["adjustment"] == "bh"
    for row in record["rows"]:
        found = row["values"][column.header]
        assert found["p"] == BOARD[row["encoder"]] and found["p_adjusted"] == pytest.approx(marks[(row["encoder"], column.path)].adjusted)


def test_leaderboard_adjust_none_marks_by_raw_p(board_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--home", str(board_home), "leaderboard", "--adjust", "none", "--format", "csv"]) == 0
    rows = {row["encoder"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert {encoder for encoder, row in rows.items() if row["pos−neg marked"] == "True"} == {"toy/a", "toy/b", "toy/c", "toy/d"}
    assert all(row["pos−neg p_adjusted"] == row["pos−neg p"] for row in rows.values())
    assert cli.main(["--home", str(board_home), "leaderboard", "--format", "csv"]) == 0
    rows = {row["encoder"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert {encoder for encoder, row in rows.items() if row["pos−neg marked"] == "True"} == {"toy/a"}


@pytest.mark.parametrize("bad", ["0.01", {"p": 0, "alternative": "greater"}, {"p": True, "alternative": "greater"},
                                 {"p": 0.01, "alternative": "two-sided"}, {"p": 0.01, "alternative": "less", "permutations": None}],
                         ids=["text", "p-zero", "p-bool", "alternative", "permutations"])
def test_a_cell_with_a_damaged_test_is_skipped_with_the_reason(tmp_path: Path, bad: object) -> None:
    write_cell(tmp_path, "toy/a", 1.0, 0.01)
    write_cell(tmp_path, "toy/b", 2.0, 0.5)
    (path,) = [found for found in tmp_path.glob("knn-influence/**/*.json") if "toy--a" in str(found)]
    document = json.loads(path.read_text())
    document["tests"]["gap_pos_minus_neg"] = bad
    path.write_text(json.dumps(document))
    boards, damaged = stored.collect(tmp_path)
    assert [cell.encoder for board in boards for cell in board.cells] == ["toy/b"]
    assert len(damaged) == 1 and damaged[0].path == path and "test" in damaged[0].reason


def test_the_trace_ranking_counts_only_adjusted_marks_in_the_trace_direction(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    write_cell(folder, "toy/a", 4.0, 0.001)
    write_cell(folder, "toy/b", 3.0, 0.001, alternative=measures.LESS)  # significant, but against the trace
    write_cell(folder, "toy/c", 2.0, 0.04)  # passes only unadjusted: BH over 0.001, 0.04, 0.5 gives it 0.06
    write_cell(folder, "toy/d", 1.0, 0.5)
    boards, _ = stored.collect(folder)
    families = {name: "cvl" for name in ("toy/a", "toy/b", "toy/c", "toy/d")}
    standings = {s.encoder: s for s in ranking.borda(ranking.contests(boards), families)}
    assert standings["toy/a"].place == 1
    assert all(standings[name].place is None and standings[name].marked == 0 for name in ("toy/b", "toy/c", "toy/d"))
    unadjusted = {s.encoder: s for s in ranking.borda(ranking.contests(boards, "none"), families)}
    assert unadjusted["toy/c"].place == 2 and unadjusted["toy/b"].place is None  # the wrong direction never counts
    note = leaderboard.trace_grid(boards).caption
    assert "Benjamini–Hochberg over the 3 such tests" in note  # the family: tests in the trace's direction


# ---------------------------------------------------------------------------------------------
# --groups
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            for index in range(3):
                path = root / split / name / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (index * 40, 10, 20)).save(path)
    return root


def groups_file(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("image", "group")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_groups_name_units_and_unnamed_images_stay_their_own(folder: Path, tmp_path: Path) -> None:
    named = groups_file(tmp_path / "groups.csv", [
        ("train/cat/0.png", "shoot1"), ("val/cat/0.png", "shoot1"),  # by id
        ("train/cat/1.png", "shoot2"),
        (str(folder / "train" / "dog" / "2.png"), "shoot3"),  # by absolute path
    ])
    plain = data.resolve("imagefolder", DatasetOptions(root=folder))
    grouped = data.resolve("imagefolder", DatasetOptions(root=folder, groups=named))
    ids = ["train/cat/0.png", "val/cat/0.png", "train/cat/1.png", "train/dog/2.png", "train/dog/0.png"]
    assert grouped.units(ids) == ["group:shoot1", "group:shoot1", "group:shoot2", "group:shoot3", "image:train/dog/0.png"]
    assert plain.units(ids) == [f"image:{image}" for image in ids]
    assert grouped.unit_name == "group (--groups)" and plain.unit_name == "image"
    # which images share a unit changes a cell's inputs, not what its table holds
    assert grouped.identity == plain.identity and grouped.key == plain.key and grouped.contents == plain.contents
    assert plain.units_digest is None and grouped.units_digest is not None
    other = data.resolve("imagefolder", DatasetOptions(root=folder, groups=groups_file(tmp_path / "other.csv", [("train/cat/0.png", "x")])))
    assert other.units_digest not in (None, grouped.units_digest)


def test_a_groups_file_saved_by_a_spreadsheet_is_read(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "groups.csv"
    path.write_bytes("\ufeffimage,group\r\ntrain/cat/0.png,shoot1\r\n".encode("utf-8"))  # byte-order mark, CRLF
    grouped = data.resolve("imagefolder", DatasetOptions(root=folder, groups=path))
    assert grouped.units(["train/cat/0.png"]) == ["group:shoot1"]


@pytest.mark.parametrize(("rows", "header", "message"), [
    ([("train/cat/0.png", "a")], ("file", "group"), "must name the columns image and group"),
    ([("train/cat/0.png", "a"), ("train/cat/0.png", "b")], ("image", "group"), "two groups"),
    ([("elsewhere/0.png", "a")], ("image", "group"), "none of its 1 images is in the dataset"),
    ([("train/cat/0.png", "")], ("image", "group"), "both needed"),
], ids=["columns", "two-groups", "no-match", "empty"])
def test_a_bad_groups_file_is_refused_by_name(folder: Path, tmp_path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...],
                                              message: str) -> None:
    path = groups_file(tmp_path / "bad-groups.csv", rows, header)
    with pytest.raises(DataError, match=message) as raised:
        data.resolve("imagefolder", DatasetOptions(root=folder, groups=path))
    assert "bad-groups.csv" in str(raised.value)
    with pytest.raises(DataError, match="no such file"):
        data.resolve("imagefolder", DatasetOptions(root=folder, groups=tmp_path / "missing.csv"))
