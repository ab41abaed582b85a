"""benchmarks/calibration.py: a replicate cut from the one batched run gets the interval a run on
its own images gets, and the quick mode prints its table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bench.tasks import knn_influence, similarity

CALIBRATION = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def calibration() -> ModuleType:
    loaded = importlib.util.spec_from_file_location("calibration_benchmark", CALIBRATION)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules["calibration_benchmark"] = module  # its dataclasses look their module up
    loaded.loader.exec_module(module)
    yield module
    del sys.modules["calibration_benchmark"]


def test_a_batched_replicate_is_the_run_on_its_own_images(calibration: ModuleType) -> None:
    """knn-influence and similarity search every replicate's val images at once; replicate r's
    interval must be the one bench prints for a run on replicate r's images alone."""
    sizes = calibration.Sizes(replicates=3, train=60, val=12, k=5)
    world = calibration.ProcessingWorld(trace=0.2)
    train = world.train(0, sizes)
    batched = calibration.knn_planted(0, sizes, sizes.replicates, trace=0.2)[0]
    shifts = calibration.similarity_planted(0, sizes, sizes.replicates, trace=0.2)
    a, b = world.names[-1], world.names[0]
    for r in range(sizes.replicates):
        val = world.val(0, sizes, r)
        alone = knn_influence.run(train, val, world.names, k=sizes.k, seeds=(0,)).resample(calibration.RESAMPLING).intervals()
        np.testing.assert_allclose(batched.intervals[r], alone["gap_pos_minus_neg"])
        found = similarity.distributions(val.vectors[a], val.labels, train.vectors[a], train.vectors[b], train.labels)
        for marks in shifts:
            expected = found.resample(calibration.RESAMPLING).intervals()[marks.effect.split(" ")[1]]
            np.testing.assert_allclose(marks.intervals[r], expected, rtol=1e-5)  # float32 products summed in other blocks


def test_quick_mode_prints_the_table(calibration: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert calibration.main(["--quick", "--no-real", "--only", "paircams", "--replicates", "20", "--power-replicates", "10"]) == 0
    printed = capsys.readouterr().out
    for phrase in ("False marks on nulls", "paircams gap_same_minus_different", "Power on planted effects", "trace 0.2"):
        assert phrase in printed
