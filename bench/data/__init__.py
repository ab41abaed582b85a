"""Dataset adapters: each yields ImageRecords in a stable order with stable ids."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from bench import registry
from bench.data import demo
from bench.data.record import METADATA_COLUMNS, ImageRecord


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    records: Callable[[], list[ImageRecord]]
    card: str  # datasets/<name>.toml
    knn_k: int = 10  # the paper: k=10 on ImageNet, k=1 on iNat


DATASETS: dict[str, DatasetSpec] = registry.build(
    "dataset",
    [
        DatasetSpec(
            name="demo",
            description="offline: 11 real photos shipped in scikit-image/scikit-learn/matplotlib, "
            f"{demo.TRAIN_PER_CLASS} train + {demo.VAL_PER_CLASS} val deterministic crops each",
            records=demo.records,
            card="datasets/demo.toml",
        ),
        DatasetSpec(
            name="demo-mini",
            description="the demo photos with 4 train + 2 val crops each: a smoke test in seconds",
            records=partial(demo.records, train_per_class=4, val_per_class=2),
            card="datasets/demo.toml",
            knn_k=3,
        ),
    ],
)


def get(name: str) -> DatasetSpec:
    return registry.lookup("dataset", DATASETS, name)


__all__ = ["DATASETS", "DatasetSpec", "ImageRecord", "METADATA_COLUMNS", "get"]
