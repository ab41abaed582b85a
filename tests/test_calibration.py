"""benchmarks/calibration.py: its replicates are the numbers the tasks print for the same images,
a statistic that cannot move is set apart, and the quick mode prints its table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

from bench.tasks import knn_influence
from bench.vectors import SplitVectors

CALIBRATION = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def calibration() -> Iterator[ModuleType]:
    loaded = importlib.util.spec_from_file_location("calibration_benchmark", CALIBRATION)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules["calibration_benchmark"] = module  # its dataclasses look their module up
    loaded.loader.exec_module(module)
    yield module
    del sys.modules["calibration_benchmark"]


def split(vectors: list[np.ndarray], labels: np.ndarray, prefix: str, names: tuple[str, ...]) -> SplitVectors:
    return SplitVectors(np.array([f"{prefix}{i:04d}" for i in range(len(labels))]), np.asarray(labels, dtype=np.int64),
                        dict(zip(names, (v.copy() for v in vectors))))


def test_a_knn_replicate_is_the_gap_knn_influence_prints_for_its_images(calibration: ModuleType) -> None:
    """Each replicate draws its images anew; its value is the task's pos−neg on exactly those images."""
    sizes = calibration.Sizes(replicates=2, permutations=9, resamples=20)
    world = calibration.Versions(classes=4, per_photo=2)
    found = calibration.knn_family(world, sizes, 0, 2, k=3, train_photos=5, val_photos=2)
    names = tuple(f"v{v}" for v in range(world.versions))
    drawn = []
    for r, replicate in enumerate(found):
        (train, train_labels, _), (val, val_labels, _) = world.draw(calibration.rng(0, f"knn-{world}", r), 5, 2)
        task = knn_influence.run(split(train, train_labels, "t", names), split(val, val_labels, "v", names), names, k=3, seeds=(0,),
                                 backend="torch")
        assert replicate.value == pytest.approx(task.metrics()["gap_pos_minus_neg"], abs=1e-9)
        assert replicate.interval is not None and replicate.interval[0] <= replicate.value <= replicate.interval[1]
        assert replicate.p is not None and 0.0 < replicate.p <= 1.0
        drawn.append(train[0])
    assert not np.array_equal(*drawn)  # every replicate draws its images anew


def test_a_constant_probe_cannot_fail_and_is_never_marked(calibration: ModuleType) -> None:
    sizes = calibration.Sizes(replicates=10, permutations=19, resamples=20)
    found = calibration.label_probe_family(sizes, 0, 10, "probe_acc1", constant=True)
    row = calibration.Row("acquisition probe acc", "a constant probe", "image", None, tuple(found))
    assert row.cannot_fail and not row.marked.any() and all(replicate.p == 1.0 for replicate in found)
    varying = calibration.Row("acquisition probe acc", "varying", "image", None,
                              tuple(calibration.label_probe_family(sizes, 0, 10, "probe_acc1")))
    assert not varying.cannot_fail


def test_quick_mode_prints_the_table(calibration: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    status = calibration.main(["--quick", "--only", "paircams", "--replicates", "20", "--workers", "1", "--no-board"])
    printed = " ".join(capsys.readouterr().out.split())
    for phrase in ("false marks on nulls (20 replicates", "paircams gap", "exchangeable shots, 1 subject a photo",
                   "planted effects", "planted camera trace 0.3"):
        assert phrase in printed
    assert status == (1 if "over the goal" in printed else 0)


def test_an_audit_replicate_is_the_v_the_audit_prints_for_its_files(calibration: ModuleType) -> None:
    """The audit family's V is bench.audit.measure's V on the same files, crops of one file included."""
    from bench.audit.measure import MEASURED, measure
    from bench.audit.properties import PROPERTIES, Reading
    from bench.data.record import ImageRecord

    world = calibration.FileWorld((6,) * 4, (0.5, 0.3, 0.2), planted=0.4, crops=(1, 3))
    labels, units, values = world.draw(calibration.rng(0, "test-audit", 0))
    records = [ImageRecord(f"i{i}", "train", int(label), f"c{label}", f"f{unit}.jpg") for i, (label, unit) in enumerate(zip(labels, units))]
    constant = {prop.name: "same" for prop in PROPERTIES}
    reading = Reading({f"f{unit}.jpg": {**constant, "jpeg_quality": f"q{values[unit]}"} for unit in range(len(values))}, {})
    found = {item.name: item for item in measure("toy", "toy", {}, records, reading).properties}  # V does not hang on the settings
    assert found["jpeg_quality"].status == MEASURED and found["format"].status != MEASURED
    replicate = calibration.audit_replicate(labels, units, values, calibration.Sizes(permutations=19, resamples=50), 0)
    assert replicate.value == pytest.approx(found["jpeg_quality"].v, abs=1e-12)
    assert replicate.interval is not None and replicate.p is not None and 0.05 <= replicate.p <= 1.0


def test_a_planted_v_is_what_the_audit_measures_on_many_files(calibration: ModuleType) -> None:
    """The planted V is the population's: the audit's V on 3,000 files lands on it, and 0 plants nothing."""
    from bench.audit import association

    for planted in (0.0, 0.25, 0.6):
        world = calibration.FileWorld((600,) * 5, (0.5, 0.3, 0.2), planted=planted)
        if planted:
            assert world.population_v(world.strength()) == pytest.approx(planted, abs=1e-9)
        labels, units, values = world.draw(calibration.rng(0, "test-planted", 0))
        coded = association.Coded(labels, units, values, 5, 3)
        assert float(association.cramers_v(coded.table())) == pytest.approx(planted, abs=0.03)


def test_an_audit_null_with_one_value_is_not_measured(calibration: ModuleType) -> None:
    replicate = calibration.audit_replicate(np.array([0, 1, 1]), np.arange(3), np.array([2, 2, 2]), calibration.Sizes(), 0)
    assert replicate.p is None and not replicate.moved
