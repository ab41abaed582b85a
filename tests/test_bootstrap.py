"""The paired bootstrap (bench.bootstrap) against a literal resampling loop, its coverage on known
distributions, and the per-unit outcomes each task resamples."""

from __future__ import annotations

import numpy as np
import pytest

from bench import bootstrap
from bench.tasks import paircams, probe_acquisition, probe_processing, similarity
from bench.tasks.linear_probe import ProbeSettings
from tests.test_probes import processing_splits

pytestmark = pytest.mark.usefixtures("single_thread")


def test_resampled_sums_equal_a_loop_over_the_documented_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(0).normal(size=(3, 57))
    resampling = bootstrap.Resampling(40, seed=5)
    expected = np.stack([values[:, np.random.default_rng([5, r]).integers(0, 57, 57)].sum(axis=1) for r in range(40)])
    assert np.allclose(bootstrap.resampled_sums(values, resampling), expected)
    monkeypatch.setattr(bootstrap, "BLOCK_DRAWS", 100)  # a block of one resample: the draws do not depend on blocking
    assert np.allclose(bootstrap.resampled_sums(values, resampling), expected)


def test_interval_of_a_mean_has_the_normal_width_and_zero_resamples_switch_it_off() -> None:
    hits = 100.0 * (np.random.default_rng(1).random(2000) < 0.3)
    low, high = bootstrap.mean_intervals({"acc": hits}, bootstrap.Resampling(1000))["acc"]
    width = 2 * 1.96 * 100 * np.sqrt(0.3 * 0.7 / 2000)
    assert low < hits.mean() < high
    assert high - low == pytest.approx(width, rel=0.12)
    assert bootstrap.mean_intervals({"acc": hits}, bootstrap.Resampling(0)) == {}


def test_paired_resampling_narrows_a_gap_between_correlated_statistics() -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(size=500) * 10
    first, second = shared + rng.normal(size=500), shared + 0.5 + rng.normal(size=500)
    found = bootstrap.mean_intervals({"first": first, "second": second, "gap": second - first}, bootstrap.Resampling(500))
    assert bootstrap.excludes(found["gap"], 0.0)  # paired: the shared part cancels
    assert found["first"][1] > found["second"][0]  # unpaired, the two intervals overlap


def test_paircams_resamples_subjects_and_its_units_average_to_the_reported_recalls() -> None:
    rng = np.random.default_rng(3)
    subjects = np.repeat(np.arange(60), 2)
    cameras = np.tile([0, 1], 60)
    vectors = rng.normal(size=(60, 16))[subjects] + 0.8 * rng.normal(size=(120, 16)) + 1.5 * np.eye(16)[cameras]
    found = paircams.recall_at_1(vectors, subjects, cameras)
    metrics = found.metrics(bootstrap.Resampling(500))
    for path, values in found.per_subject().items():
        group, _, name = path.partition(".")
        reported = metrics[group][name] if name else metrics[group]
        assert np.mean(values) == pytest.approx(reported, abs=1e-9)
        low, high = metrics["ci95"][path]
        assert low <= reported <= high
    assert metrics["gap_same_minus_different"] < 0 and bootstrap.excludes(metrics["ci95"]["gap_same_minus_different"], 0.0)


def test_similarity_shift_intervals_resample_queries_as_ratios_of_sums() -> None:
    rng = np.random.default_rng(4)
    labels = np.arange(80) % 4
    centres = rng.normal(size=(4, 12))
    offset = np.eye(12)[0] * 0.8  # shared by the queries and the "same" database only
    queries = centres[labels[:20]] + rng.normal(size=(20, 12)) + offset
    same = centres[labels] + rng.normal(size=(80, 12)) + offset
    other = centres[labels] + rng.normal(size=(80, 12))
    found = similarity.distributions(queries, labels[:20], same, other, labels)
    metrics = found.metrics(bootstrap.Resampling(500))
    for part in similarity.PARTS:
        assert found.query_sums[part].sum() / found.query_sizes[part].sum() == pytest.approx(found.mean(part))
    for name in ("shift_semantic_same", "shift_semantic_diff"):
        low, high = metrics["ci95"][name]
        assert low < metrics[name] < high and low > 0  # the planted offset raises every same-processing cosine


def test_probe_per_image_accuracy_averages_to_the_reported_accuracy() -> None:
    train, val = processing_splits(np.random.default_rng(5), classes=3, train=120, val=40, dim=16, signal=0.6)
    outcome = probe_processing.processing_probe(train, val, tuple(train.vectors), seeds=(0, 1), settings=ProbeSettings(trials=2, epochs=5))
    assert outcome.hits.shape == (2, 3 * 40)
    assert np.mean(outcome.per_image(40)) == pytest.approx(outcome.acc1.mean())
    low, high = outcome.intervals(40, "probe_acc1.mean", bootstrap.Resampling(300))["probe_acc1.mean"]
    assert low <= outcome.acc1.mean() <= high


def test_mean_class_accuracy_interval_equals_a_loop_over_the_draws() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 60)
    hits = rng.random(60) < 0.6
    expected = []
    for r in range(200):
        drawn = np.random.default_rng([0, r]).integers(0, 60, 60)
        expected.append(100 * np.mean([hits[drawn][labels[drawn] == c].mean() for c in np.unique(labels[drawn])]))
    found = probe_acquisition.class_mean_interval(hits, labels, bootstrap.Resampling(200))["probe_mean_class_acc"]
    assert found == pytest.approx(list(np.percentile(expected, [2.5, 97.5])))
