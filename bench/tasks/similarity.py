"""Similarity distributions (docs/protocol.md#similarity, the paper's Fig. 2): cosine similarity from val
queries under processing a to the train images under a and under b, split four ways by semantic
label (same / different) and processing (same / different), with the shift that sharing the
query's processing causes within each semantic group.

Aggregated over every query (the figure's single query is one sample of this); histograms are
accumulated block by block, so no query × database matrix is ever held whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from bench import bootstrap, data, processing, results
from bench.tasks.options import BOOTSTRAP, GROUP
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
        """The two shifts in every resample of queries: each part's mean is the ratio of its
        resampled cosine sum to its resampled pair count."""
        points = {"shift_semantic_same": self.mean(PARTS[0]) - self.mean(PARTS[1]),
                  "shift_semantic_diff": self.mean(PARTS[2]) - self.mean(PARTS[3])}
        queries = len(next(iter(self.query_sums.values())))
        if not resampling.enabled:
            return bootstrap.Resampled({}, points, queries)
        sums, sizes = (np.stack([per_query[part] for part in PARTS]) for per_query in (self.query_sums, self.query_sizes))
        means = bootstrap.resampled_ratios(sums, sizes, resampling)
        return bootstrap.Resampled({"shift_semantic_same": means[:, 0] - means[:, 1], "shift_semantic_diff": means[:, 2] - means[:, 3]},
                                   points, queries)

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


def plan(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    a, b = pair(options[GROUP.name])
    return Work(results.condition(group=options[GROUP.name], query=a, other=b), (a, b), ("train", "val"), (a, b), unit="val image")


def measure(inputs: Inputs) -> Distributions:
    a, b = inputs.settings
    train, val = inputs.vectors["train"], inputs.vectors["val"]
    return distributions(val.vectors[a], val.labels, train.vectors[a], train.vectors[b], train.labels, (a, b))

TASK = TaskSpec(
    name=NAME,
    description="cosine similarity split by semantic same/diff x processing same/diff, and the shift (paper §9.1, Fig. 2)",
    plan=plan,
    measure=measure,
    columns=(
        Column("sem= proc=", "mean_cosine.semantic_same/processing_same"),
        Column("sem= proc≠", "mean_cosine.semantic_same/processing_diff"),
        Column("shift sem=", "shift_semantic_same", interval=True),
        Column("sem≠ proc=", "mean_cosine.semantic_diff/processing_same"),
        Column("sem≠ proc≠", "mean_cosine.semantic_diff/processing_diff"),
        Column("shift sem≠", "shift_semantic_diff", interval=True),
    ),
    options=(GROUP, BOOTSTRAP),
    decimals=3,
)
