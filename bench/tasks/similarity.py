"""Similarity distributions (docs/protocol.md#similarity, the paper's Fig. 2): cosine similarity from val
queries under processing a to the train images under a and under b, split four ways by semantic
label (same / different) and processing (same / different), with the shift that sharing the
query's processing causes within each semantic group.

Aggregated over every query (the figure's single query is one sample of this); histograms are
accumulated block by block, so no query × database matrix is ever held whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import bootstrap, plots, processing, results
from bench.encoders.spec import EncoderSpec
from bench.store import Store
from bench.tasks.cells import Computed, run_cells
from bench.tasks.options import BOOTSTRAP, GROUP, resampling
from bench.tasks.request import RunRequest
from bench.tasks.spec import Column, TaskSpec
from bench.vectors import normalise

NAME = "similarity"
EDGES = np.linspace(-1.0, 1.0, 201)  # 200 bins of width 0.01 over the cosine range
QUERY_BLOCK = 512
PARTS = ("semantic_same.processing_same", "semantic_same.processing_diff",
         "semantic_diff.processing_same", "semantic_diff.processing_diff")


@dataclass(frozen=True)
class Distributions:
    counts: dict[str, np.ndarray]  # part -> histogram over EDGES
    query_sums: dict[str, np.ndarray]  # part -> (queries,) sum of that query's cosines in the part
    query_sizes: dict[str, np.ndarray]  # part -> (queries,) how many pairs of that query fall in the part

    @property
    def sums(self) -> dict[str, float]:
        return {part: float(values.sum()) for part, values in self.query_sums.items()}

    @property
    def sizes(self) -> dict[str, int]:
        return {part: int(values.sum()) for part, values in self.query_sizes.items()}

    def mean(self, part: str) -> float:
        return self.sums[part] / self.sizes[part] if self.sizes[part] else float("nan")

    def metrics(self, resampling: bootstrap.Resampling = bootstrap.Resampling(0)) -> dict[str, object]:
        means = {part: self.mean(part) for part in PARTS}
        return {
            "mean_cosine": {part.replace(".", "/"): value for part, value in means.items()},
            "shift_semantic_same": means[PARTS[0]] - means[PARTS[1]],
            "shift_semantic_diff": means[PARTS[2]] - means[PARTS[3]],
            results.INTERVALS: self.intervals(resampling),
        }

    def intervals(self, resampling: bootstrap.Resampling) -> dict[str, list[float]]:
        """95 % intervals of the two shifts, resampling queries: each part's mean is the ratio of
        its resampled cosine sum to its resampled pair count."""
        if not resampling.enabled:
            return {}
        sums, sizes = (np.stack([per_query[part] for part in PARTS]) for per_query in (self.query_sums, self.query_sizes))
        means = bootstrap.resampled_ratios(sums, sizes, resampling)
        shifts = np.stack([means[:, 0] - means[:, 1], means[:, 2] - means[:, 3]], axis=1)
        points = [self.mean(PARTS[0]) - self.mean(PARTS[1]), self.mean(PARTS[2]) - self.mean(PARTS[3])]
        return bootstrap.named(["shift_semantic_same", "shift_semantic_diff"], bootstrap.t_interval(shifts, points, sums.shape[1]))


def distributions(
    queries: np.ndarray, query_labels: np.ndarray, same: np.ndarray, other: np.ndarray, database_labels: np.ndarray
) -> Distributions:
    """`same` / `other`: the database under the queries' processing / under the other one, row-aligned."""
    queries, same, other = (normalise(v) for v in (queries, same, other))
    counts = {part: np.zeros(len(EDGES) - 1, dtype=np.int64) for part in PARTS}
    sums = {part: np.zeros(len(queries), dtype=np.float64) for part in PARTS}
    sizes = {part: np.zeros(len(queries), dtype=np.int64) for part in PARTS}
    for start in range(0, len(queries), QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        semantic = query_labels[block, None] == database_labels[None, :]
        for database, processing_part in ((same, "processing_same"), (other, "processing_diff")):
            scores = np.clip(queries[block] @ database.T, -1.0, 1.0)  # float error can step past ±1
            for mask, semantic_part in ((semantic, "semantic_same"), (~semantic, "semantic_diff")):
                part = f"{semantic_part}.{processing_part}"
                counts[part] += np.histogram(scores[mask], bins=EDGES)[0]
                sums[part][block] = np.where(mask, scores, 0.0).sum(axis=1, dtype=np.float64)
                sizes[part][block] = mask.sum(axis=1)
    return Distributions(counts, sums, sizes)


def pair(group: str) -> tuple[str, str]:
    """(a, b): the group's last class (the mildest: jpeg95_444 for jpeg) against its first."""
    classes = processing.group(group)
    return classes[-1], classes[0]


def execute(request: RunRequest) -> list[Path]:
    group = request.value(GROUP)
    resampled = resampling(request, "val image")
    a, b = pair(group)

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train = store.split_vectors(key, spec.name, "train", (a, b))
        val = store.split_vectors(key, spec.name, "val", (a,))
        found = distributions(val.vectors[a], val.labels, train.vectors[a], train.vectors[b], train.labels)
        return Computed(
            metric="mean_cosine",
            metrics=found.metrics(resampled),
            detail={
                "query_processing": a,
                "other_processing": b,
                "edges": EDGES.tolist(),
                "counts": {part.replace(".", "/"): found.counts[part].tolist() for part in PARTS},
                "pairs": {part.replace(".", "/"): found.sizes[part] for part in PARTS},
            },
        )

    return run_cells(
        request, task=NAME, condition=results.condition(group=group, query=a, other=b),
        processings=(a, b), splits=("train", "val"), compute=compute,
        resampling=resampled,
    )


PARTS_DRAWN = (
    ("semantic_same/processing_same", "same class, same processing", "#1f77b4", "-"),
    ("semantic_same/processing_diff", "same class, other processing", "#1f77b4", "--"),
    ("semantic_diff/processing_same", "other class, same processing", "#ff7f0e", "-"),
    ("semantic_diff/processing_diff", "other class, other processing", "#ff7f0e", "--"),
)


def figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[plots.Figure]:
    """The four cosine distributions, one panel per encoder."""
    cells = results.ordered(task.primary, cells)
    columns = min(3, len(cells))
    rows = -(-len(cells) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns + 1.8, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    for ax, cell in zip(axes.flat, cells):
        detail = cell["detail"]
        edges = np.asarray(detail["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        for key, label, colour, style in PARTS_DRAWN:
            counts = np.asarray(detail["counts"][key], dtype=float)
            density = counts / max(counts.sum(), 1.0) / np.diff(edges)
            ax.plot(centres, density, color=colour, linestyle=style, linewidth=1.2, label=label)
        ax.set_title(cell["encoder"], fontsize=9)
        ax.set_xlabel("cosine similarity")
        ax.set_ylabel("density")
    axes.flat[min(len(cells), columns) - 1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    query, other = cells[0]["detail"]["query_processing"], cells[0]["detail"]["other_processing"]
    distributions_figure = plots.Figure(
        plots.save(plt, figure, folder, f"{plots.slug('similarity', dataset, condition)}.png"),
        f"Cosine similarity from val queries under {query} to train images under {query} (solid) and under "
        f"{other} (dashed), for the same semantic class (blue) and other classes (orange), on {dataset}. "
        "Solid right of dashed: sharing the query's processing raises similarity.")
    figure = plots.interval_chart(plt, cells, [("shift_semantic_same", "shift, same class"), ("shift_semantic_diff", "shift, other class")],
                                  "mean cosine, same processing − other processing")
    shifts_figure = plots.Figure(
        plots.save(plt, figure, folder, f"{plots.slug('similarity-shift', dataset, condition)}.png"),
        f"The shift per encoder on {dataset}: how much sharing the query's processing ({query} vs {other}) raises the mean cosine, "
        "among same-class and other-class pairs, with 95 % bootstrap intervals over val images; a filled point's interval excludes 0.")
    return [distributions_figure, shifts_figure]


TASK = TaskSpec(
    name=NAME,
    description="cosine similarity split by semantic same/diff x processing same/diff, and the shift (paper §9.1, Fig. 2)",
    execute=execute,
    columns=(
        Column("sem= proc=", "mean_cosine.semantic_same/processing_same"),
        Column("sem= proc≠", "mean_cosine.semantic_same/processing_diff"),
        Column("shift sem=", "shift_semantic_same", interval=True),
        Column("sem≠ proc=", "mean_cosine.semantic_diff/processing_same"),
        Column("sem≠ proc≠", "mean_cosine.semantic_diff/processing_diff"),
        Column("shift sem≠", "shift_semantic_diff", interval=True),
    ),
    rule=lambda cells: (
        f"mean cosine similarity from every val query under {results.setting(cells, 'query')} to every train image under "
        f"{results.setting(cells, 'query')} (proc=) and under {results.setting(cells, 'other')} (proc≠), split by whether the "
        "semantic labels match (sem= / sem≠). shift = proc= minus proc≠ within a semantic group: how much sharing the query's "
        "processing raises similarity. Histograms are in each cell's detail. " + bootstrap.rule("val image", cells)
    ),
    options=(GROUP, BOOTSTRAP),
    figures=figures,
    decimals=3,
)
