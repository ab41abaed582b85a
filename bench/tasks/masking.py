"""Masking sweep (PROTOCOL.md §9.2, the paper's Fig. 5): semantic kNN accuracy when queries and
database are both masked at each ratio, showing where semantic information is gone (the reason
the acquisition probes mask 95 %)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich.console import Console

from bench import data, index, processing, results
from bench.encoders.spec import EncoderSpec
from bench.store import SplitVectors, Store
from bench.tasks.cells import Computed, run_cells
from bench.tasks.knn_influence import accuracy, class_count
from bench.tasks.options import RunOptions

NAME = "masking"


def curve(train: SplitVectors, val: SplitVectors, ratios: Sequence[str], k: int, backend: str = "auto") -> dict[str, float]:
    """knn_acc1 (%) per masking op, database and queries under the same op."""
    num_classes = class_count(train, val)
    out: dict[str, float] = {}
    for name in ratios:
        found = index.search(index.normalise(val.vectors[name]), index.normalise(train.vectors[name]), k, backend=backend)
        out[name] = accuracy(found.rows, train.labels, val.labels, num_classes)
    return out


def execute(options: RunOptions, console: Console) -> list[Path]:
    dataset = data.get(options.dataset)
    ratios = processing.MASK_SWEEP
    k = options.k or dataset.knn_k

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train = store.split_vectors(key, spec.name, "train", ratios)
        val = store.split_vectors(key, spec.name, "val", ratios)
        accuracies = curve(train, val, ratios, k, options.backend)
        num_classes = class_count(train, val)
        return Computed(
            metric="knn_acc1",
            metrics={"knn_acc1": accuracies, "chance": 100.0 / num_classes},
            detail={"ratios": {name: float(processing.get(name).param("ratio")) for name in ratios}, "k": k},
            provenance={"backend": index.resolve_backend(options.backend)},
        )

    return run_cells(
        options, console, task=NAME, condition=results.condition(k=k, ratios="-".join(ratios)),
        processings=ratios, splits=("train", "val"), compute=compute,
    )
