"""Similarity distributions (docs/protocol.md#similarity, the paper's Fig. 2): cosine similarity from val
queries under processing a to the train images under a and under b, split four ways by semantic
label (same / different) and processing (same / different), with the shift that sharing the
query's processing causes within each semantic group.

Aggregated over every query (the figure's single query is one sample of this); histograms are
accumulated block by block, so no query × database matrix is ever held whole.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from bench import bootstrap, data, measures, processing, results
from bench.tasks.options import BOOTSTRAP, GROUP, PERMUTATIONS, inference
from bench.tasks.spec import Column, Inputs, TaskSpec, Work
from bench.vectors import normalise

NAME = "similarity"
EDGES = np.linspace(-1.0, 1.0, 201)  # 200 bins of width 0.01 over the cosine range
QUERY_BLOCK = 512
PARTS = ("semantic_same/processing_same", "semantic_same/processing_diff",
         "semantic_diff/processing_same", "semantic_diff/processing_diff")


@dataclass(frozen=True)
class Distributions:
    counts: dict[str, np.ndarray]  # part -> histogram over EDGES
    query_sums: dict[str, np.ndarray]  # part -> (queries,) sum of that query's cosines in the part
    query_sizes: dict[str, np.ndarray]  # part -> (queries,) how many pairs of that query fall in the part
    query: str = ""  # the processing of the queries and of the "same" database
    other: str = ""  # the processing of the "other" database
    shifts: Mapping[str, measures.Effect] = field(default_factory=dict)  # each shift's interval and test (bench.measures)

    @property
    def sums(self) -> dict[str, float]:
        return {part: float(values.sum()) for part, values in self.query_sums.items()}

    @property
    def sizes(self) -> dict[str, int]:
        return {part: int(values.sum()) for part, values in self.query_sizes.items()}

    def mean(self, part: str) -> float:
        return self.sums[part] / self.sizes[part] if self.sizes[part] else float("nan")

    def metrics(self) -> dict[str, float]:
        means = {part: self.mean(part) for part in PARTS}
        return {
            **{f"mean_cosine.{part}": value for part, value in means.items()},
            "shift_semantic_same": means[PARTS[0]] - means[PARTS[1]],
            "shift_semantic_diff": means[PARTS[2]] - means[PARTS[3]],
        }

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        """The two shifts with their intervals (units redrawn in train and val together) and their
        permutation tests, as `measure` computed them."""
        metrics = self.metrics()
        points = {name: metrics[name] for name in measures.SHIFTS}
        samples = {name: effect.samples for name, effect in self.shifts.items() if effect.samples is not None}
        return bootstrap.Resampled(samples, points, len(next(iter(self.query_sums.values()))),
                                   {name: effect.test for name, effect in self.shifts.items()})

    def detail(self) -> dict[str, Any]:
        return {"query_processing": self.query, "other_processing": self.other, "edges": EDGES.tolist(),
                "counts": {part: self.counts[part].tolist() for part in PARTS}, "pairs": self.sizes}

    def provenance(self) -> dict[str, Any]:
        return {}

    def picks(self) -> None:
        return None


def distributions(
    queries: np.ndarray, query_labels: np.ndarray, same: np.ndarray, other: np.ndarray, database_labels: np.ndarray,
    names: tuple[str, str] = ("", ""),
) -> Distributions:
    """`same` / `other`: the database under the queries' processing / under the other one, row-aligned;
    `names`: those two processings."""
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
                part = f"{semantic_part}/{processing_part}"
                counts[part] += np.histogram(scores[mask], bins=EDGES)[0]
                sums[part][block] = np.where(mask, scores, 0.0).sum(axis=1, dtype=np.float64)
                sizes[part][block] = mask.sum(axis=1)
    return Distributions(counts, sums, sizes, *names)


def pair(group: str) -> tuple[str, str]:
    """(a, b): the group's last class (the mildest: jpeg95_444 for jpeg) against its first."""
    classes = processing.group(group)
    return classes[-1], classes[0]


@dataclass(frozen=True)
class SimilaritySettings:
    query: str  # a: the queries' processing
    other: str  # b
    inference: bootstrap.Resampling | None


def work(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    a, b = pair(options[GROUP.name])
    return Work(results.condition(group=options[GROUP.name], query=a, other=b), (a, b), ("train", "val"),
                SimilaritySettings(a, b, inference(options, dataset)), unit=dataset.unit_name)


def measure(inputs: Inputs) -> Distributions:
    settings: SimilaritySettings = inputs.settings
    a, b = settings.query, settings.other
    train, val = inputs.vectors["train"], inputs.vectors["val"]
    found = distributions(val.vectors[a], val.labels, train.vectors[a], train.vectors[b], train.labels, (a, b))
    if settings.inference is None:
        return found
    shifts = measures.similarity_shifts(
        [train.vectors[a], train.vectors[b]], train.labels, [val.vectors[a], val.vectors[b]], val.labels,
        train_units=inputs.dataset.units(train.image_ids), val_units=inputs.dataset.units(val.image_ids),
        permutations=settings.inference.permutations, resampling=settings.inference)
    return dataclasses.replace(found, shifts=shifts)

TASK = TaskSpec(
    name=NAME,
    description="cosine similarity split by semantic same/diff x processing same/diff, and the shift (paper §9.1, Fig. 2)",
    work=work,
    measure=measure,
    columns=(
        Column("sem= proc=", "mean_cosine.semantic_same/processing_same"),
        Column("sem= proc≠", "mean_cosine.semantic_same/processing_diff"),
        Column("shift sem=", "shift_semantic_same", interval=True),
        Column("sem≠ proc=", "mean_cosine.semantic_diff/processing_same"),
        Column("sem≠ proc≠", "mean_cosine.semantic_diff/processing_diff"),
        Column("shift sem≠", "shift_semantic_diff", interval=True),
    ),
    options=(GROUP, BOOTSTRAP, PERMUTATIONS),
    decimals=3,
    view="bench.report.similarity",
)
