"""The paired bootstrap (bench.bootstrap) against a literal resampling loop, its coverage on known
distributions, and the per-unit outcomes each task resamples."""

from __future__ import annotations

import numpy as np
import pytest

from bench import bootstrap, measures
from bench.tasks import paircams, probe_acquisition, probe_processing, similarity
from bench.tasks.linear_probe import ProbeSettings
from tests.test_probes import processing_splits

pytestmark = pytest.mark.usefixtures("single_thread")


def _mean_intervals(per_unit: dict[str, np.ndarray], resampling: bootstrap.Resampling) -> dict[str, tuple[float, float]]:
    samples = measures.unit_means(per_unit, None, resampling)
    return {name: bootstrap.percentile_interval(samples[name], float(np.mean(values))) for name, values in per_unit.items()}


def test_unit_draws_equal_a_loop_over_the_documented_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(0).normal(size=(3, 57))
    resampling = bootstrap.Resampling(40, seed=5)
    expected = np.stack([values[:, np.random.default_rng([5, r]).integers(0, 57, 57)].sum(axis=1) for r in range(40)])
    assert np.allclose(measures.unit_draws(np.arange(57), resampling) @ values.T, expected)
    monkeypatch.setattr(bootstrap, "BLOCK_DRAWS", 100)  # a block of one resample: the draws do not depend on blocking
    assert np.allclose(measures.unit_draws(np.arange(57), resampling) @ values.T, expected)
    assert measures.unit_draws(np.arange(57), bootstrap.Resampling(0)).shape == (0, 57)


def test_interval_of_a_mean_has_the_normal_width() -> None:
    hits = 100.0 * (np.random.default_rng(1).random(2000) < 0.3)
    low, high = _mean_intervals({"acc": hits}, bootstrap.Resampling(1000))["acc"]
    width = 2 * 1.96 * 100 * np.sqrt(0.3 * 0.7 / 2000)
    assert low < hits.mean() < high
    assert high - low == pytest.approx(width, rel=0.12)


def test_paired_resampling_narrows_a_gap_between_correlated_statistics() -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(size=500) * 10
    first, second = shared + rng.normal(size=500), shared + 0.5 + rng.normal(size=500)
    found = _mean_intervals({"first": first, "second": second, "gap": second - first}, bootstrap.Resampling(500))
    assert found["gap"][0] > 0.0  # paired: the shared part cancels
    assert found["first"][1] > found["second"][0]  # unpaired, the two intervals overlap


def paircams_world(seed: int, pairs: int, camera_shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(pairs), 2)
    cameras = np.tile([0, 1], pairs)
    vectors = rng.normal(size=(pairs, 16))[subjects] + 0.8 * rng.normal(size=(2 * pairs, 16)) + camera_shift * np.eye(16)[cameras]
    return vectors, subjects, cameras


def test_paircams_resamples_redraw_queries_and_distractors_together() -> None:
    vectors, subjects, cameras = paircams_world(3, 60, 1.5)
    found = paircams.recall_at_1(vectors, subjects, cameras)
    metrics = found.metrics()
    resampled = found.resample(bootstrap.Resampling(200))
    intervals = resampled.intervals()
    for path in ("recall_at_1.same", "recall_at_1.different", "gap_same_minus_different"):
        assert resampled.points[path] == metrics[path]
        low, high = intervals[path]
        assert low <= metrics[path] <= high
    assert metrics["gap_same_minus_different"] < 0 and intervals["gap_same_minus_different"][1] < 0.0

    # a literal recount of a few resamples: the drawn subjects form the collections, every draw is a query
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    by_camera = [unit[cameras == camera][np.argsort(subjects[cameras == camera])] for camera in (0, 1)]
    drawn = next(bootstrap.counts(60, bootstrap.Resampling(200)))
    for r in (0, 1, 7):
        queries = np.repeat(np.arange(60), drawn[r].astype(int))
        present = np.flatnonzero(drawn[r])
        recalls = {}
        for camera, direction in enumerate(paircams.DIRECTIONS):
            own, partners = by_camera[camera], by_camera[1 - camera]
            for collection, pool in (("same", own), ("different", partners)):
                hits = [all(own[i] @ partners[i] > own[i] @ pool[j] for j in present if j != i) for i in queries]
                recalls[f"recall_at_1.{collection}_{direction}"] = 100.0 * np.mean(hits)
        for name, value in recalls.items():
            assert resampled.samples[name][r] == pytest.approx(value, abs=1e-9), (r, name)
        gap = np.mean([recalls[f"recall_at_1.same_{d}"] - recalls[f"recall_at_1.different_{d}"] for d in paircams.DIRECTIONS])
        assert resampled.samples["gap_same_minus_different"][r] == pytest.approx(gap, abs=1e-9)


def test_similarity_shift_intervals_redraw_images_and_hold_the_planted_shift_above_zero() -> None:
    rng = np.random.default_rng(4)
    labels = np.arange(80) % 4
    centres = rng.normal(size=(4, 12))
    offset = np.eye(12)[0] * 0.8  # shared by every image under the queries' processing only
    train_scenes, val_scenes = centres[labels] + rng.normal(size=(80, 12)), centres[labels[:20]] + rng.normal(size=(20, 12))
    train = [train_scenes + offset + 0.3 * rng.normal(size=(80, 12)), train_scenes + 0.3 * rng.normal(size=(80, 12))]
    val = [val_scenes + offset + 0.3 * rng.normal(size=(20, 12)), val_scenes + 0.3 * rng.normal(size=(20, 12))]
    found = similarity.distributions(val[0], labels[:20], train[0], train[1], labels)
    for part in similarity.PARTS:
        assert found.query_sums[part].sum() / found.query_sizes[part].sum() == pytest.approx(found.mean(part))
    metrics = found.metrics()
    shifts = measures.similarity_shifts(train, labels, val, labels[:20], permutations=99, resampling=bootstrap.Resampling(500))
    for name in ("shift_semantic_same", "shift_semantic_diff"):
        effect = shifts[name]
        assert effect.value == pytest.approx(metrics[name], abs=1e-6)
        low, high = effect.interval
        assert low <= effect.value <= high and low > 0  # the planted offset raises every same-processing cosine
        assert effect.test.p == pytest.approx(1 / 100)  # no swap of versions reaches it


def test_probe_per_image_accuracy_averages_to_the_reported_accuracy() -> None:
    train, val = processing_splits(np.random.default_rng(5), classes=3, train=120, val=40, dim=16, signal=0.6)
    outcome = probe_processing.processing_probe(train, val, tuple(train.vectors), seeds=(0, 1), settings=ProbeSettings(trials=2, epochs=5))
    assert outcome.hits.shape == (2, 3 * 40)
    assert np.mean(outcome.per_image(40)) == pytest.approx(outcome.acc1.mean())
    assert outcome.predictions is not None and ((outcome.predictions == np.repeat(np.arange(3), 40)) == outcome.hits).all()
    found = measures.processing_probe_accuracy(outcome.predictions, 3, permutations=0, resampling=bootstrap.Resampling(300))
    assert found.value == pytest.approx(outcome.acc1.mean())
    low, high = found.interval
    assert low <= outcome.acc1.mean() <= high


def test_mean_class_accuracy_resamples_within_each_class_as_a_loop_does() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 60)
    hits = rng.random(60) < 0.6
    predictions = np.where(hits, labels, (labels + 1) % 4)
    classes = [np.flatnonzero(labels == c) for c in range(4)]
    expected = []
    for r in range(200):
        draw = np.random.default_rng([0, r])
        drawn = [members[draw.integers(0, len(members), len(members))] for members in classes]
        expected.append(100 * np.mean([hits[chosen].mean() for chosen in drawn]))  # every class keeps its count
    found = measures.label_probe_accuracy(predictions, labels, permutations=0, resampling=bootstrap.Resampling(200))["probe_mean_class_acc"]
    point = 100 * np.mean([hits[members].mean() for members in classes])
    assert found.value == pytest.approx(point)
    assert found.samples == pytest.approx(expected)
    assert found.interval == pytest.approx(bootstrap.percentile_interval(np.array(expected), point))


def test_a_constant_predictor_is_never_marked_on_unbalanced_classes() -> None:
    # 16 classes, one of them large: always naming it scores the majority share top-1 and chance per class
    labels = np.concatenate([np.zeros(20, dtype=int), np.repeat(np.arange(1, 16), 3)])
    predictions = np.zeros(len(labels), dtype=int)
    chance, majority = 100 / 16, 100 * 20 / len(labels)
    found = measures.label_probe_accuracy(predictions, labels, permutations=199, resampling=bootstrap.Resampling(1000))
    per_class, top1 = found["probe_mean_class_acc"], found["probe_acc1"]
    assert per_class.value == pytest.approx(chance) and top1.value == pytest.approx(majority)
    assert per_class.test.reference == pytest.approx(chance) and top1.test.reference == pytest.approx(majority)
    assert per_class.test.p == 1.0 and top1.test.p == 1.0  # every permutation of the labels scores the same
    assert not per_class.marked and not top1.marked
    assert per_class.interval[0] <= chance <= per_class.interval[1]
    assert top1.interval[0] > chance  # which is why top-1 is judged against the majority share


@pytest.mark.parametrize("units", [2, 3, 5, 9])
def test_every_point_estimate_lies_inside_its_interval_even_on_few_skewed_units(units: int) -> None:
    rng = np.random.default_rng(units)
    for trial in range(50):
        values = rng.exponential(size=units) ** 3 * rng.choice([-1, 1])
        low, high = _mean_intervals({"x": values}, bootstrap.Resampling(200, seed=trial))["x"]
        assert low <= values.mean() <= high


def test_stratified_draws_keep_every_stratum_size() -> None:
    strata = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    for block in bootstrap.counts(len(strata), bootstrap.Resampling(50), strata):
        for label in (0, 1, 2):
            assert (block[:, strata == label].sum(axis=1) == np.sum(strata == label)).all()
