"""The report: every figure is a valid image that both the HTML and the Markdown reference."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from bench import bootstrap, report, results
from bench.store import SplitVectors
from bench.tasks import knn_influence, masking, mitigate, paircams, probe_processing, similarity
from bench.tasks.linear_probe import ProbeSettings
from tests.conftest import run_bench

ENCODERS = (("toy/a", "cvl"), ("toy/b", "ssl"), ("toy/c", "sup"))
RESAMPLING = bootstrap.Resampling(200)


def synthetic_splits(rng: np.random.Generator, names: tuple[str, ...]) -> tuple[SplitVectors, SplitVectors]:
    centres = rng.normal(size=(4, 16))

    def split(count: int, prefix: str) -> SplitVectors:
        labels = np.arange(count) % 4
        vectors = {name: (centres[labels] + rng.normal(size=(count, 16)) * (1 + j)).astype(np.float32) for j, name in enumerate(names)}
        return SplitVectors(np.array([f"{prefix}{i}" for i in range(count)]), labels, vectors)

    return split(40, "t"), split(12, "v")


def write_cells(results_dir: Path) -> None:
    """One cell per task and encoder, computed by each task's own functions on synthetic vectors."""
    rng = np.random.default_rng(0)
    for encoder, family in ENCODERS:
        classes = ("jpeg75_420", "jpeg95_444")
        train, val = synthetic_splits(rng, classes)
        outcome = knn_influence.run(train, val, classes, k=3, seeds=(0, 1), backend="faiss-cpu")
        setups = outcome.setups()
        results.write(results.Cell("knn-influence", "toy", encoder, "group=jpeg"), results_dir, {
            "family": family, "metrics": {"knn_acc1": setups, "gap_pos_minus_neg": setups["pos_same"] - setups["neg_same"], "chance": 25.0,
                                          "ci95": outcome.intervals(RESAMPLING)}})

        subjects = np.repeat(np.arange(20), 2)
        cameras = np.tile([0, 1], 20)
        pair = paircams.recall_at_1(rng.normal(size=(20, 8))[subjects] + rng.normal(size=(40, 8)), subjects, cameras)
        results.write(results.Cell("paircams", "toy", encoder, "processing=original"), results_dir,
                      {"family": family, "metrics": pair.metrics(RESAMPLING), "detail": {"pairs": pair.pairs}})

        found = similarity.distributions(val.vectors[classes[1]], val.labels, train.vectors[classes[1]], train.vectors[classes[0]], train.labels)
        results.write(results.Cell("similarity", "toy", encoder, "group=jpeg"), results_dir, {
            "family": family, "metrics": found.metrics(RESAMPLING),
            "detail": {"query_processing": classes[1], "other_processing": classes[0], "edges": similarity.EDGES.tolist(),
                       "counts": {part.replace(".", "/"): found.counts[part].tolist() for part in similarity.PARTS}}})

        sweep = ("mask0", "mask50", "mask95")
        train, val = synthetic_splits(rng, sweep)
        results.write(results.Cell("masking", "toy", encoder, "k=3"), results_dir, {
            "family": family, "metrics": {"knn_acc1": masking.curve(train, val, sweep, 3, "faiss-cpu"), "chance": 25.0},
            "detail": {"ratios": {"mask0": 0.0, "mask50": 0.5, "mask95": 0.95}}})

        outcome = probe_processing.processing_probe(train, val, sweep, seeds=(0, 1), settings=ProbeSettings(trials=2, epochs=3))
        results.write(results.Cell("probe-processing", "toy", encoder, "group=toy"), results_dir, {
            "family": family, "metrics": {"probe_acc1": {"mean": float(outcome.acc1.mean()), "std": float(outcome.acc1.std())},
                                          "chance": 100 / 3, "ci95": outcome.resampled(len(val.image_ids), "probe_acc1.mean", RESAMPLING).intervals()}})
        results.write(results.Cell("probe-acquisition", "toy", encoder, "processing=mask95"), results_dir, {
            "family": family, "metrics": {"probe_acc1": float(outcome.acc1[0]), "chance": 25.0,
                                          "ci95": {"probe_acc1": [float(outcome.acc1[0]) - 5.0, float(outcome.acc1[0]) + 5.0]}}})

        rng_values = rng.normal(size=(3, len(val.image_ids)))
        before = {name: 50.0 + 10.0 * values for name, values in zip(("gap_pos_minus_neg", "probe_acc1", "all_same"), rng_values)}
        after = {name: values - 5.0 for name, values in before.items()}
        results.write(results.Cell("mitigate", "toy", encoder, "group=toy"), results_dir, {
            "family": family, "metrics": {**mitigate.summary(before, after, RESAMPLING), "directions": 2, "chance": 100 / 3}})


def test_every_figure_is_a_valid_image_referenced_by_both_reports(tmp_path: Path) -> None:
    write_cells(tmp_path / "results")
    page, markdown, figures = report.write(tmp_path / "results", tmp_path / "out", "toy report")
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


def test_report_verb_without_results_says_what_to_run(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "report")
    assert done.returncode == 2 and "run a task first" in done.stderr and "Traceback" not in done.stderr
