"""Planted structure: one known direction encodes the processing and shifts the kNN result. The
gap's permutation test and interval tell it apart from a control without it, and mitigation removes
it at little semantic cost."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from bench import bootstrap, measures
from bench.tasks import erasure, knn_influence, mitigate
from bench.tasks.linear_probe import ProbeSettings
from bench.runner import RunRequest, run
from bench.tasks.spec import Inputs
from bench.vectors import SplitVectors
from bench.workspace import Workspace
from tests.conftest import run_bench

pytestmark = pytest.mark.usefixtures("single_thread")

CLASSES = ("proc_a", "proc_b", "proc_c")
LABELS = 6
DIM = 32
TRACE = DIM - 1  # the planted processing direction: the last coordinate, which no semantic centre uses
OFFSETS = (-1.0, 0.0, 1.0)  # processing c moves every image by strength * OFFSETS[c] along TRACE
K = 10
RESAMPLING = bootstrap.Resampling(300, permutations=99)
PROBE = ProbeSettings(trials=4, epochs=30)


@functools.lru_cache(maxsize=None)
def planted(strength: float) -> tuple[SplitVectors, SplitVectors]:
    """Train (360) and val (240) images: a semantic centre plus noise, and per processing the
    planted offset along TRACE and a little noise of its own; strength 0 is the no-trace control."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(LABELS, DIM))
    centres[:, TRACE] = 0.0

    def split(count: int, prefix: str) -> SplitVectors:
        labels = np.arange(count) % LABELS
        scenes = centres[labels] + 1.1 * rng.normal(size=(count, DIM))
        scenes[:, TRACE] = 0.0
        vectors = {
            name: (scenes + 0.2 * rng.normal(size=(count, DIM)) + strength * OFFSETS[c] * np.eye(DIM)[TRACE]).astype(np.float32)
            for c, name in enumerate(CLASSES)
        }
        return SplitVectors(np.array([f"{prefix}{i:04d}" for i in range(count)]), labels.astype(np.int64), vectors)

    return split(360, "t"), split(240, "v")


class Images:
    """A dataset's units as measure reads them: every image its own."""

    unit_name = "image"

    def units(self, image_ids: np.ndarray) -> list[str]:
        return [f"image:{image_id}" for image_id in image_ids]


def gap(train: SplitVectors, val: SplitVectors) -> tuple[float, measures.Effect, knn_influence.KnnInfluence]:
    outcome = knn_influence.run(train, val, CLASSES, k=K, seeds=(0, 1), backend="torch")
    setups = outcome.setups()
    settings = knn_influence.Settings(CLASSES, K, (0, 1), "versioned", "torch", RESAMPLING)
    effect = knn_influence.gap_effect(train, val, Images(), settings)  # type: ignore[arg-type]
    assert effect is not None
    return setups["pos_same"] - setups["neg_same"], effect, outcome


def test_the_planted_gap_is_marked_and_the_control_is_not() -> None:
    planted_gap, planted_effect, outcome = gap(*planted(2.0))
    control_gap, control_effect, _ = gap(*planted(0.0))
    assert planted_gap > 5.0 and planted_effect.value == pytest.approx(planted_gap)
    assert planted_effect.test.p == pytest.approx(1 / 100) and planted_effect.marked  # no permutation of the versions reaches it
    assert 0.0 < planted_effect.interval[0] <= planted_gap <= planted_effect.interval[1]
    assert control_effect.value == pytest.approx(control_gap) and not control_effect.marked
    assert control_effect.interval[0] < 0.0 < control_effect.interval[1]
    # the per-query scores the bootstrap resamples average to exactly the reported setups
    for name, value in outcome.setups().items():
        assert np.mean(outcome.per_query()[name]) == pytest.approx(value, abs=1e-9)


def test_mitigation_removes_the_planted_trace_at_little_semantic_cost() -> None:
    train, val = planted(2.0)
    found = erasure.learn(train, CLASSES)
    assert found.reached_chance and 1 <= found.directions <= 2
    assert abs(found.basis[TRACE]).max() > 0.95  # the first direction found is the planted one

    settings = mitigate.Settings(knn_influence.Settings(CLASSES, K, (0, 1), "versioned", "torch", RESAMPLING), PROBE)
    outcome = mitigate.measure(Inputs(None, Images(), {"train": train, "val": val}, settings))  # type: ignore[arg-type]
    assert outcome.erased.directions == found.directions
    metrics = outcome.metrics()
    assert metrics["before.gap_pos_minus_neg"] > 5.0 and metrics["before.probe_acc1"] > 90.0
    assert metrics["gap_removed"] >= 90.0
    assert abs(metrics["after.probe_acc1"] - found.chance) <= 2.0
    assert metrics["before.all_same"] - metrics["after.all_same"] < 1.0
    assert metrics["change.gap_pos_minus_neg"] == pytest.approx(metrics["after.gap_pos_minus_neg"] - metrics["before.gap_pos_minus_neg"])
    resampled = outcome.resample(RESAMPLING)
    assert resampled.intervals()["change.gap_pos_minus_neg"][1] < 0.0  # the removed gap, told apart from no change
    # the trace left is tested, the price (a change) is not: a change is no trace
    assert set(resampled.tests) == {"after.gap_pos_minus_neg", "after.probe_acc1"}
    assert all(test.alternative == measures.GREATER and test.p is not None for test in resampled.tests.values())
    assert resampled.tests["after.probe_acc1"].p > 0.05  # the probe after the projection is at chance


def test_the_control_has_nothing_to_remove_and_projection_leaves_the_store_vectors_alone() -> None:
    train, val = planted(0.0)
    found = erasure.learn(train, CLASSES)
    assert found.directions == 0 and found.reached_chance
    original = train.vectors[CLASSES[0]].copy()
    projected = found.apply(train)
    assert np.array_equal(train.vectors[CLASSES[0]], original)  # projection happens on copies, in memory
    assert np.allclose(np.linalg.norm(projected.vectors[CLASSES[0]], axis=1), 1.0, atol=1e-5)


def test_run_mitigate_then_knn_influence_whose_cells_follow_the_bootstrap_setting(tmp_path: Path) -> None:
    options = {"group": "sharpening", "seeds": 2}
    mitigated = run_bench(tmp_path, "run", "mitigate", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random",
                          *(f"--{name}={value}" for name, value in {**options, "trials": 2, "epochs": 3, "bootstrap": 200}.items()))
    assert mitigated.returncode == 0, mitigated.stderr
    cell = json.loads(next((tmp_path / "reports" / "results" / "mitigate").glob("**/*.json")).read_text())
    for stage in ("before", "after", "change"):
        measured = {name for name in cell["metrics"] if name.startswith(f"{stage}.")}
        assert measured == {f"{stage}.{name}" for name in ("gap_pos_minus_neg", "probe_acc1", "all_same")}
        assert measured <= set(cell["intervals"])
    assert set(cell["tests"]) == {"after.gap_pos_minus_neg", "after.probe_acc1"}
    assert cell["provenance"]["bootstrap"]["resamples"] == 200 and cell["detail"]["rounds"]
    assert "gap after" in mitigated.stdout and "effnet/lite0.random" in mitigated.stdout

    # the same embeddings, in process: a stored cell is reused only under the same bootstrap settings
    console = Console(stderr=True, record=True, width=300)
    request = functools.partial(RunRequest, workspace=Workspace.at(tmp_path), dataset="demo-mini", encoders=("effnet/lite0.random",),
                                console=console)
    [path] = run(request(values={**options, "bootstrap": 200}), knn_influence.TASK)
    intervals = json.loads(path.read_text())["intervals"]
    assert set(intervals) == {"gap_pos_minus_neg"}  # the gap is what its test marks; the setups are shown without intervals
    assert run(request(values={**options, "bootstrap": 200}), knn_influence.TASK) == []
    assert run(request(values={**options, "bootstrap": 0}), knn_influence.TASK) == [path]
    assert json.loads(path.read_text())["intervals"] == {}
    assert "other bootstrap settings" in console.export_text()
