"""Planted structure: one known direction encodes the processing and shifts the kNN result. The
gap's permutation test and interval tell it apart from a control without it; each mitigation
method removes the trace of the group it was fitted on, and only normalisation fitted on another
group removes that group's trace; a null carries no mark after any method."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from bench import bootstrap, data, encoders, measures, mitigation, processing
from bench.errors import UsageError
from bench.tasks import erasure, knn_influence, mitigate, probe_processing
from bench.tasks.linear_probe import ProbeSettings
from bench.tasks.spec import Inputs
from bench.vectors import SplitVectors
from tests.conftest import run_bench

pytestmark = pytest.mark.usefixtures("single_thread")

CLASSES = ("proc_a", "proc_b", "proc_c")
ENCODER = encoders.get("effnet/lite0.random")  # a name for the progress notes: nothing is loaded
LABELS = 6
DIM = 32
TRACE = DIM - 1  # the planted processing direction: the last coordinate, which no semantic centre uses
OTHER_TRACE = DIM - 2  # a second group's direction, orthogonal to the first
OFFSETS = (-1.0, 0.0, 1.0)  # processing c moves every image by strength * OFFSETS[c] along TRACE
K = 10
RESAMPLING = bootstrap.Resampling(300, permutations=99)
PROBE = ProbeSettings(trials=4, epochs=30)


def scenes(count: int, rng: np.random.Generator, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(count) % LABELS
    found = centres[labels] + 1.1 * rng.normal(size=(count, DIM))
    found[:, [TRACE, OTHER_TRACE]] = 0.0
    return labels, found


def versions(offsets: dict[str, tuple[float, float]], count: int, prefix: str, rng: np.random.Generator,
             centres: np.ndarray) -> SplitVectors:
    """Every image under every named processing: its scene, a little noise of the version's own, and
    the processing's offsets along (TRACE, OTHER_TRACE)."""
    labels, content = scenes(count, rng, centres)
    vectors = {}
    for name, (first, second) in offsets.items():
        shift = np.zeros(DIM)
        shift[TRACE], shift[OTHER_TRACE] = first, second
        vectors[name] = (content + 0.2 * rng.normal(size=(count, DIM)) + shift).astype(np.float32)
    return SplitVectors(np.array([f"{prefix}{i:04d}" for i in range(count)]), labels.astype(np.int64), vectors)


def centres_of(rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(LABELS, DIM))
    centres[:, [TRACE, OTHER_TRACE]] = 0.0
    return centres


@functools.lru_cache(maxsize=None)
def planted(strength: float) -> tuple[SplitVectors, SplitVectors]:
    """Train (360) and val (240) images under the three classes of one group: a semantic centre plus
    noise, and per processing the planted offset along TRACE and a little noise of its own;
    strength 0 is the no-trace control."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(LABELS, DIM))
    centres[:, TRACE] = 0.0

    def split(count: int, prefix: str) -> SplitVectors:
        labels = np.arange(count) % LABELS
        content = centres[labels] + 1.1 * rng.normal(size=(count, DIM))
        content[:, TRACE] = 0.0
        vectors = {
            name: (content + 0.2 * rng.normal(size=(count, DIM)) + strength * OFFSETS[c] * np.eye(DIM)[TRACE]).astype(np.float32)
            for c, name in enumerate(CLASSES)
        }
        return SplitVectors(np.array([f"{prefix}{i:04d}" for i in range(count)]), labels.astype(np.int64), vectors)

    return split(360, "t"), split(240, "v")


@functools.lru_cache(maxsize=None)
def every_group(jpeg: float, sharpening: float) -> tuple[SplitVectors, SplitVectors]:
    """Train and val images under every processing bench has groups for: the JPEG classes spread
    along TRACE (`jpeg` apart), the two sharpened classes along OTHER_TRACE (`sharpening` apart,
    jpeg95_444 at 0, as the group's neutral class), the resized and interpolated classes with no trace."""
    rng = np.random.default_rng(11)
    centres = centres_of(rng)
    jpeg_classes = processing.group("jpeg")
    offsets = {name: (0.0, 0.0) for name in mitigate.processings_read()}
    for index, name in enumerate(jpeg_classes):
        offsets[name] = (jpeg * (index / (len(jpeg_classes) - 1) - 0.5), 0.0)
    offsets["sharpen2"], offsets["sharpen4"] = (0.0, sharpening), (0.0, -sharpening)
    return versions(offsets, 300, "t", rng, centres), versions(offsets, 180, "v", rng, centres)


class Images:
    """A dataset's units as measure reads them: every image its own."""

    unit_name = "image"

    def units(self, image_ids: np.ndarray) -> list[str]:
        return [f"image:{image_id}" for image_id in image_ids]


def gap(train: SplitVectors, val: SplitVectors, classes: tuple[str, ...] = CLASSES) -> tuple[float, measures.Effect, knn_influence.KnnInfluence]:
    outcome = knn_influence.run(train, val, classes, k=K, seeds=(0, 1), backend="torch")
    setups = outcome.setups()
    settings = knn_influence.KnnSettings(classes, K, (0, 1), "versioned", "torch", RESAMPLING)
    effect = knn_influence.gap_effect(train, val, Images(), settings)  # type: ignore[arg-type]
    assert effect is not None
    return setups["pos_same"] - setups["neg_same"], effect, outcome


def probe_effect(train: SplitVectors, val: SplitVectors, classes: tuple[str, ...] = CLASSES) -> measures.Effect:
    """The processing probe's accuracy on val and its permutation test (probe-processing's protocol)."""
    found = probe_processing.processing_probe(train, val, classes, seeds=(0, 1), settings=PROBE)
    return measures.processing_probe_accuracy(found.predictions, len(classes), permutations=199, resampling=bootstrap.Resampling(0))


def settings_for(method: str, group: str = "jpeg", classes: tuple[str, ...] | None = None) -> mitigate.MitigateSettings:
    classes = classes or processing.group(group)
    return mitigate.MitigateSettings(knn_influence.KnnSettings(classes, K, (0, 1), "versioned", "torch", RESAMPLING), PROBE, group, method)


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


@pytest.mark.parametrize("method", mitigation.METHODS)
def test_each_method_removes_the_trace_it_was_fitted_on_at_little_semantic_cost(method: str) -> None:
    train, val = planted(2.0)
    before_gap, before_effect, before = gap(train, val)
    assert before_effect.marked and probe_effect(train, val).marked
    fitted = mitigation.fit(method, train, CLASSES)
    changed_train, changed_val = fitted.apply(train), fitted.apply(val)
    after_gap, after_effect, after = gap(changed_train, changed_val)
    probe_after = probe_effect(changed_train, changed_val)
    assert abs(after_gap) < 0.2 * before_gap and not after_effect.marked
    assert probe_after.value < 100.0 / len(CLASSES) + 5.0 and not probe_after.marked  # a fresh probe finds nothing left
    assert before.setups()["all_same"] - after.setups()["all_same"] < 4.0  # the content survives (standardising reweights it a little)
    assert fitted.needs_class_at_test == (method == mitigation.NORMALISE)


def test_reached_chance_is_the_rule_that_ends_the_rounds() -> None:
    """A small hold-out stops the rounds within two standard errors of chance: the record says so too."""
    rounds = (erasure.Round(60.0, 1), erasure.Round(40.0, 0))
    small = erasure.Erasure(np.zeros((8, 1)), rounds, 100 / 3, erasure.TOLERANCE, held_rows=30)
    large = erasure.Erasure(np.zeros((8, 1)), rounds, 100 / 3, erasure.TOLERANCE, held_rows=30000)
    assert erasure.at_chance(40.0, 100 / 3, erasure.TOLERANCE, 30) and small.reached_chance
    assert not erasure.at_chance(40.0, 100 / 3, erasure.TOLERANCE, 30000) and not large.reached_chance
    settings = settings_for(mitigation.PROJECTION)
    assert "round limit" not in mitigate.summary(mitigation.Projection(small), settings)
    assert "round limit stopped it before chance" in mitigate.summary(mitigation.Projection(large), settings)


def test_projection_finds_the_planted_direction_and_leaves_the_store_vectors_alone() -> None:
    train, val = planted(2.0)
    found = erasure.learn(train, CLASSES)
    assert found.reached_chance and 1 <= found.directions <= 2
    assert abs(found.basis[TRACE]).max() > 0.95  # the first direction found is the planted one
    control = erasure.learn(planted(0.0)[0], CLASSES)
    assert control.directions == 0 and control.reached_chance
    original = train.vectors[CLASSES[0]].copy()
    for method in mitigation.METHODS:
        changed = mitigation.fit(method, train, CLASSES).apply(train)
        assert np.array_equal(train.vectors[CLASSES[0]], original)  # every method works on copies, in memory
        assert np.allclose(np.linalg.norm(changed.vectors[CLASSES[0]], axis=1), 1.0, atol=1e-5)


def test_normalisation_removes_another_groups_trace_only_when_fitted_on_that_group() -> None:
    train, val = every_group(jpeg=3.0, sharpening=2.0)
    sharpening = processing.group("sharpening")
    assert gap(train, val, sharpening)[1].marked
    on_jpeg = mitigation.fit(mitigation.NORMALISE, train, processing.group("jpeg"))
    on_sharpening = mitigation.fit(mitigation.NORMALISE, train, sharpening)
    left = probe_effect(on_jpeg.apply(train), on_jpeg.apply(val), sharpening)
    removed = probe_effect(on_sharpening.apply(train), on_sharpening.apply(val), sharpening)
    assert left.marked and left.value > 90.0  # the JPEG statistics know nothing of sharpening
    assert not removed.marked and not gap(on_sharpening.apply(train), on_sharpening.apply(val), sharpening)[1].marked


def test_mitigate_measures_the_fitted_group_and_the_transfer_to_every_other_group() -> None:
    train, val = every_group(jpeg=3.0, sharpening=2.0)
    outcome = mitigate.measure(Inputs(ENCODER, Images(), {"train": train, "val": val}, settings_for(mitigation.NORMALISE)))  # type: ignore[arg-type]
    metrics = outcome.metrics()
    resampled = outcome.resample(RESAMPLING)
    tests, intervals = resampled.tests, resampled.intervals()
    assert set(outcome.groups) == set(processing.GROUPS)
    for group in processing.GROUPS:
        for name in ("gap_pos_minus_neg", "probe_acc1"):
            assert mitigate.group_metric(group, "after", name) in tests and mitigate.group_metric(group, "after", name) in intervals
    assert metrics["before.gap_pos_minus_neg"] > 1.0 and tests["after.gap_pos_minus_neg"].p > 0.05
    assert tests["group.jpeg.before.gap_pos_minus_neg"].p <= 0.01 and tests["group.jpeg.before.probe_acc1"].p <= 0.01  # the trace it removed
    assert tests["group.interpolation.before.probe_acc1"].p > 0.05  # no trace planted there (resizing holds jpeg95_444, which has one)
    assert metrics["after.probe_acc1"] == metrics["group.jpeg.after.probe_acc1"] and tests["after.probe_acc1"].p > 0.05
    assert metrics["group.sharpening.before.probe_acc1"] > 90.0 and tests["group.sharpening.after.probe_acc1"].p <= 0.01  # never seen: kept
    assert "change.all_same" in intervals and "change.all_same" not in tests  # the price has an interval and no test
    assert outcome.detail()["needs_class_at_test"] is True and outcome.detail()["fitted_on"] == "jpeg"


@pytest.mark.parametrize("method", (mitigation.NORMALISE, mitigation.ADVERSARIAL))
def test_a_null_carries_no_mark_after_any_method(method: str) -> None:
    train, val = every_group(jpeg=0.0, sharpening=0.0)
    outcome = mitigate.measure(Inputs(ENCODER, Images(), {"train": train, "val": val}, settings_for(method)))  # type: ignore[arg-type]
    tests = outcome.resample(RESAMPLING).tests
    for stage in mitigate.STAGES:  # before is tested too (the report draws it); the board marks after
        adjusted = measures.adjust([test.p for name, test in tests.items() if name.startswith("group.") and f".{stage}." in name])
        assert len(adjusted) == 2 * len(processing.GROUPS) and all(p is not None and p > measures.ALPHA for p in adjusted), stage


def test_an_unknown_method_is_one_line_and_exit_2(tmp_path: Path) -> None:
    found = run_bench(tmp_path, "run", "mitigate", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random", "--method", "erase")
    assert found.returncode == 2
    assert len(found.stderr.strip().splitlines()) == 1 and "--method" in found.stderr and "normalise" in found.stderr
    assert not (tmp_path / "embeddings").exists() or not any((tmp_path / "embeddings").iterdir())  # refused before any extraction


def test_the_method_is_part_of_the_condition_and_projection_keeps_the_old_one() -> None:
    dataset = data.resolve("demo-mini", data.DatasetOptions())
    options = {option.name: option.default for option in mitigate.TASK.options} | {"group": "sharpening", "seeds": 2}
    conditions = {method: mitigate.work(options | {"method": method}, dataset).condition.text for method in mitigation.METHODS}
    assert "method=" not in conditions["projection"]  # stored projection cells keep their identity
    assert "method=adversarial" in conditions["adversarial"] and "method=normalise" in conditions["normalise"]
    assert len(set(conditions.values())) == 3
    assert set(mitigate.work(options, dataset).processings) == {name for group in processing.GROUPS.values() for name in group}


def test_the_penalty_is_part_of_the_condition_and_holds_the_map_closer() -> None:
    dataset = data.resolve("demo-mini", data.DatasetOptions())
    options = {option.name: option.default for option in mitigate.TASK.options} | {"group": "jpeg", "method": "adversarial"}
    default, explicit, stronger = (mitigate.work(options | {"penalty": penalty}, dataset) for penalty in (None, 1.0, 8.0))
    assert "penalty" not in default.condition.text and explicit.condition.text == default.condition.text  # stored cells stay current
    assert "penalty=8" in stronger.condition.text and stronger.settings.adversarial.penalty == 8.0
    with pytest.raises(UsageError, match="--method adversarial"):
        mitigate.work(options | {"method": "normalise", "penalty": 2.0}, dataset)
    train, _ = planted(2.0)
    loose, tight = (mitigation.fit(mitigation.ADVERSARIAL, train, CLASSES, adversarial=mitigate.adversarial_settings("adversarial", penalty))
                    for penalty in (0.25, 8.0))
    assert tight.distortion < 0.5 * loose.distortion  # the weight on the move is what the map pays


def test_the_board_rule_names_the_penalty_of_its_cells() -> None:
    from bench import results
    from bench.report import mitigate as view

    def cell(condition: str) -> results.Cell:
        return results.Cell(results.CellKey("mitigate", "toy", ENCODER.name, condition), "sup", {})

    base = "epochs=30,group=jpeg,k=10,method=adversarial"
    assert "penalty (λ = 1)" in view.rule([cell(f"{base},schedule=paper,seeds=3,trials=5")])
    assert "penalty (λ = 4)" in view.rule([cell(f"{base},penalty=4,schedule=paper,seeds=3,trials=5")])
    assert "λ" not in view.rule([cell("epochs=30,group=jpeg,k=10,method=normalise,schedule=paper,seeds=3,trials=5")])


def test_run_mitigate_with_a_method_writes_its_own_cell(tmp_path: Path) -> None:
    options = {"method": "normalise", "group": "sharpening", "seeds": 2, "trials": 2, "epochs": 3, "bootstrap": 100, "permutations": 49}
    found = run_bench(tmp_path, "run", "mitigate", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random",
                      *(f"--{name}={value}" for name, value in options.items()), timeout=1200)
    assert found.returncode == 0, found.stderr
    [path] = (tmp_path / "reports" / "results" / "mitigate").glob("**/*.json")
    cell = json.loads(path.read_text())
    assert "method=normalise" in cell["condition"]
    for group in processing.GROUPS:
        assert {f"group.{group}.after.gap_pos_minus_neg", f"group.{group}.after.probe_acc1"} <= set(cell["tests"])
        assert f"group.{group}.before.probe_acc1" in cell["intervals"]
    assert cell["detail"]["fitted_on"] == "sharpening" and cell["detail"]["needs_class_at_test"] is True
    assert "sharp gap" in found.stdout and "interp probe" in found.stdout and "query's processing class" in found.stdout


WIDE = 512  # more dimensions than train rows (60 images x 3 classes): a classifier can separate any batch by noise alone


@functools.lru_cache(maxsize=None)
def wide(strength: float) -> tuple[SplitVectors, SplitVectors]:
    """Train (60) and val (120) images in WIDE dimensions: weak semantic centres, noise in every
    dimension, and per processing an offset of strength * (c − 1) along the last one."""
    rng = np.random.default_rng(3)
    centres = 0.2 * rng.normal(size=(LABELS, WIDE))

    def split(count: int, prefix: str) -> SplitVectors:
        labels = np.arange(count) % LABELS
        content = centres[labels] + rng.normal(size=(count, WIDE))
        content[:, -1] = 0.0
        vectors = {name: (content + 0.3 * rng.normal(size=(count, WIDE)) + strength * (c - 1) * np.eye(WIDE)[-1]).astype(np.float32)
                   for c, name in enumerate(CLASSES)}
        return SplitVectors(np.array([f"{prefix}{i:04d}" for i in range(count)]), labels.astype(np.int64), vectors)

    return split(60, "t"), split(120, "v")


@pytest.mark.parametrize("strength", [0.0, 3.0])
def test_the_adversarial_map_keeps_the_content_when_train_rows_are_fewer_than_dimensions(strength: float) -> None:
    """The map must not chase what its classifier reads in noise (it reads most batches well above
    chance here even without a trace), nor move directions that no train row spans."""
    train, val = wide(strength)
    before_gap, before_effect, before = gap(train, val)
    fitted = mitigation.fit(mitigation.ADVERSARIAL, train, CLASSES)
    changed_train, changed_val = fitted.apply(train), fitted.apply(val)
    after_gap, after_effect, after = gap(changed_train, changed_val)
    assert before.setups()["all_same"] - after.setups()["all_same"] < 3.0
    assert not after_effect.marked
    if strength:
        assert before_effect.marked and abs(after_gap) < 0.2 * before_gap
        assert not probe_effect(changed_train, changed_val).marked
