"""The report: every figure is a valid image that both the HTML and the Markdown reference."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
from PIL import Image

from bench import bootstrap, measures, processing, results, runner, tasks
from bench import mitigation as removal
from bench.picks import Picks
from bench.report import writer
from bench.tasks import erasure, knn_influence, masking, mitigate, paircams, probe_acquisition, probe_processing, similarity
from bench.tasks.linear_probe import ProbeSettings
from bench.vectors import SplitVectors
from tests.conftest import run_bench

ENCODERS = (("toy/a", "cvl"), ("toy/b", "ssl"), ("toy/c", "sup"))
RESAMPLING = bootstrap.Resampling(200, permutations=19)
PROBE = ProbeSettings(trials=2, epochs=3)
NO_PICKS = Picks(224, "bicubic", ())


def synthetic_splits(rng: np.random.Generator, names: tuple[str, ...]) -> tuple[SplitVectors, SplitVectors]:
    centres = rng.normal(size=(4, 16))

    def split(count: int, prefix: str) -> SplitVectors:
        labels = np.arange(count) % 4
        vectors = {name: (centres[labels] + rng.normal(size=(count, 16)) * (1 + j)).astype(np.float32) for j, name in enumerate(names)}
        return SplitVectors(np.array([f"{prefix}{i}" for i in range(count)]), labels, vectors)

    return split(40, "t"), split(12, "v")


def store(results_dir: Path, task: str, encoder: str, family: str, condition: str, outcome: tasks.spec.Outcome) -> None:
    """The cell the runner makes of the outcome (its intervals from RESAMPLING), written."""
    key = results.CellKey(task, "toy", encoder, condition)
    cell, _ = runner.assemble(key, family, outcome, RESAMPLING, tasks.get(task))
    results.write(cell, results_dir)


def write_cells(results_dir: Path) -> None:
    """One cell per task and encoder, measured by each task's own functions on synthetic vectors."""
    rng = np.random.default_rng(0)
    for encoder, family in ENCODERS:
        classes = ("jpeg75_420", "jpeg95_444")
        train, val = synthetic_splits(rng, classes)
        knn_settings = knn_influence.KnnSettings(classes, 3, (0, 1), "versioned", "faiss-cpu", RESAMPLING)
        found = knn_influence.run(train, val, classes, k=3, seeds=(0, 1), backend="faiss-cpu")
        gap = measures.knn_gap([train.vectors[name] for name in classes], train.labels, [val.vectors[name] for name in classes],
                               val.labels, 3, permutations=RESAMPLING.permutations, resampling=RESAMPLING)
        outcome = knn_influence.KnnOutcome(found, knn_settings, (40, 12), NO_PICKS, gap)
        store(results_dir, "knn-influence", encoder, family, "group=jpeg,k=3,seeds=2", outcome)

        subjects = np.repeat(np.arange(20), 2)
        cameras = np.tile([0, 1], 20)
        shots = rng.normal(size=(20, 8))[subjects] + rng.normal(size=(40, 8))
        pair = paircams.recall_at_1(shots, subjects, cameras)
        pair_gap = measures.paircams_gap(shots[0::2], shots[1::2], permutations=RESAMPLING.permutations, resampling=bootstrap.Resampling(0))
        store(results_dir, "paircams", encoder, family, "processing=original", paircams.PairCamsOutcome(pair, NO_PICKS, None, pair_gap))

        found = similarity.distributions(val.vectors[classes[1]], val.labels, train.vectors[classes[1]], train.vectors[classes[0]], train.labels)
        shifts = measures.similarity_shifts([train.vectors[classes[1]], train.vectors[classes[0]]], train.labels,
                                            [val.vectors[classes[1]], val.vectors[classes[0]]], val.labels,
                                            permutations=RESAMPLING.permutations, resampling=RESAMPLING)
        store(results_dir, "similarity", encoder, family, f"group=jpeg,other={classes[0]},query={classes[1]}", dataclasses.replace(found, shifts=shifts))

        sweep = processing.MASK_SWEEP
        train, val = synthetic_splits(rng, sweep)
        curve = masking.MaskingCurve(masking.curve(train, val, sweep, 3, "faiss-cpu"), 4, masking.MaskingSettings(sweep, 3, "faiss-cpu"))
        store(results_dir, "masking", encoder, family, "k=3", curve)

        outcome = probe_processing.processing_probe(train, val, sweep, seeds=(0, 1), settings=PROBE)
        probe = probe_processing.ProcessingProbe(outcome, probe_processing.ProcessingProbeSettings(sweep, (0, 1), PROBE), len(val.image_ids), "cpu")
        store(results_dir, "probe-processing", encoder, family, f"epochs={PROBE.epochs},group=toy,schedule={PROBE.schedule},seeds=2,trials={PROBE.trials}", probe)
        found = probe_acquisition.acquisition_probe(train, val, val, "mask95", settings=PROBE)
        acquired = probe_acquisition.AcquisitionProbe(found, val.labels, ("a", "b", "c", "d"),
                                                      probe_acquisition.AcquisitionProbeSettings("mask95", PROBE, {"train": (40, 4)}), "cpu")
        store(results_dir, "probe-acquisition", encoder, family, f"epochs={PROBE.epochs},processing=mask95,schedule={PROBE.schedule},trials={PROBE.trials}", acquired)

        measured = {name: 50.0 + 10.0 * rng.normal(size=len(val.image_ids)) for name in ("gap_pos_minus_neg", "probe_acc1", "all_same")}
        erased = erasure.Erasure(np.eye(16)[:, :2], (erasure.Round(80.0, 1), erasure.Round(60.0, 1), erasure.Round(34.0, 0)), 100 / 3, 2.0, 3000)
        groups = {group: (measured, {name: values - 5.0 for name, values in measured.items()}) for group in processing.GROUPS}
        knn = knn_influence.KnnSettings(processing.group("jpeg"), 3, (0, 1), "versioned", "faiss-cpu")
        mitigation = mitigate.Mitigation(groups, removal.Projection(erased), mitigate.MitigateSettings(knn, PROBE, group="jpeg"), 4,
                                         (40, 12), 0.1, "cpu")
        store(results_dir, "mitigate", encoder, family, f"epochs={PROBE.epochs},group=jpeg,k=3,schedule={PROBE.schedule},seeds=2,trials={PROBE.trials}", mitigation)


def test_every_figure_is_a_valid_image_referenced_by_both_reports(tmp_path: Path) -> None:
    write_cells(tmp_path / "results")
    page, markdown, figures = writer.write(tmp_path / "results", tmp_path / "out", "toy report")
    html_text, markdown_text = page.read_text(), markdown.read_text()
    assert len(figures) == 10  # knn, paircams, similarity: two each; masking; two probes; mitigate
    for figure in figures:
        with Image.open(figure) as image:
            image.verify()
            assert image.format == "PNG"
        assert f'src="{figure.name}"' in html_text
        assert f"]({figure.name})" in markdown_text
    referenced = set(re.findall(r'src="([^"]+)"', html_text))
    assert referenced == {figure.name for figure in figures}  # nothing dangling, nothing missing
    for task in ("knn-influence", "paircams", "similarity", "masking", "probe-processing", "probe-acquisition", "mitigate"):
        assert f"{task} · toy" in html_text and f"## {task} · toy" in markdown_text
    for encoder, _ in ENCODERS:
        assert encoder in html_text and f"| {encoder} |" in markdown_text
    assert "## trace ranking" in markdown_text and "Borda" in html_text  # knn, paircams and the probes are contests
    assert re.search(r"\| -?\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\]\*? \|", markdown_text)  # a gap with its interval
    assert "Benjamini–Hochberg false-discovery control over the board's 3 tests" in " ".join(markdown_text.split())  # one gap per encoder


def test_report_verb_without_results_says_what_to_run(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "report")
    assert done.returncode == 2 and "run a task first" in done.stderr and "Traceback" not in done.stderr
