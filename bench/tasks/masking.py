"""Masking sweep (docs/protocol.md#masking, the paper's Fig. 5): semantic kNN accuracy when queries
and database are both masked at each ratio, showing where semantic information is gone (the
reason the acquisition probes mask 95 %)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bench import bootstrap, data, exact_search, processing, results
from bench.knn import accuracy, class_count
from bench.tasks.options import BACKEND, K, knn_k
from bench.tasks.spec import Column, Inputs, TaskSpec, Work
from bench.vectors import SplitVectors, normalise

NAME = "masking"


@dataclass(frozen=True)
class MaskingSettings:
    ratios: tuple[str, ...]  # the masking ops, in order
    k: int
    backend: str


@dataclass(frozen=True)
class MaskingCurve:
    accuracies: dict[str, float]  # masking op -> knn_acc1 (%)
    classes: int
    settings: MaskingSettings

    def metrics(self) -> dict[str, float]:
        return {**{f"knn_acc1.{name}": value for name, value in self.accuracies.items()}, "chance": 100.0 / self.classes}

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        return bootstrap.Resampled({}, {}, 0)  # a curve, reported without intervals

    def detail(self) -> dict[str, Any]:
        return {"ratios": {name: float(processing.get(name).param("ratio")) for name in self.settings.ratios}, "k": self.settings.k}

    def provenance(self) -> dict[str, Any]:
        return {"backend": exact_search.resolve_backend(self.settings.backend)}

    def picks(self) -> None:
        return None


def curve(train: SplitVectors, val: SplitVectors, ratios: Sequence[str], k: int, backend: str = "auto") -> dict[str, float]:
    """knn_acc1 (%) per masking op, database and queries under the same op."""
    num_classes = class_count(train, val)
    out: dict[str, float] = {}
    for name in ratios:
        found = exact_search.search(normalise(val.vectors[name]), normalise(train.vectors[name]), k, backend=backend)
        out[name] = accuracy(found.rows, train.labels, val.labels, num_classes)
    return out


def work(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    k = knn_k(NAME, options, dataset)
    ratios = processing.MASK_SWEEP
    settings = MaskingSettings(ratios, k, exact_search.resolve_backend(options[BACKEND.name]))
    return Work(results.condition(k=k, ratios="-".join(ratios)), ratios, ("train", "val"), settings)


def measure(inputs: Inputs) -> MaskingCurve:
    settings: MaskingSettings = inputs.settings
    train, val = inputs.vectors["train"], inputs.vectors["val"]
    return MaskingCurve(curve(train, val, settings.ratios, settings.k, settings.backend), class_count(train, val), settings)


TASK = TaskSpec(
    name=NAME,
    description="kNN accuracy with queries and database masked at 0-95 % of the crop (paper §9.2, Fig. 5)",
    work=work,
    measure=measure,
    columns=(
        Column("0%", "knn_acc1.mask0"),
        Column("25%", "knn_acc1.mask25"),
        Column("50%", "knn_acc1.mask50"),
        Column("75%", "knn_acc1.mask75"),
        Column("90%", "knn_acc1.mask90"),
        Column("95%", "knn_acc1.mask95"),
        Column("chance", "chance"),
    ),
    options=(K, BACKEND),
    view="bench.report.masking",
)
