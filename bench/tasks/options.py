"""Options several tasks take, defined once; a task lists the ones it takes in its spec."""

from __future__ import annotations

from bench import data, knn
from bench.arguments import non_negative_int, positive_int
from bench.bootstrap import DEFAULT_RESAMPLES, SEED, Resampling
from bench.index import BACKENDS
from bench.tasks.request import RunRequest
from bench.tasks.spec import TaskOption

GROUP = TaskOption("group", "processing group: jpeg, sharpening, resizing or interpolation (default: jpeg)", default="jpeg")
K = TaskOption("k", "neighbours for the kNN vote (default: the dataset's; 10 for demo, as the paper on ImageNet)", parse=positive_int)
SEEDS = TaskOption("seeds", "random seeds: the uniform setup's database draws, the probe's label draws (default: 10, as the paper)",
                   default=10, parse=positive_int)
BACKEND = TaskOption("backend", "exact search backend (default: auto)", default="auto", choices=BACKENDS)
BOOTSTRAP = TaskOption(
    "bootstrap",
    f"bootstrap resamples for the 95 %% intervals on every effect (default: {DEFAULT_RESAMPLES}, seed {SEED}; 0 switches them off)",
    default=DEFAULT_RESAMPLES, parse=non_negative_int,
)


def resampling(request: RunRequest, unit: str) -> Resampling:
    """The run's bootstrap settings, resampling `unit`s (named in the cell's provenance)."""
    return Resampling(request.value(BOOTSTRAP), unit=unit)


def knn_dataset(request: RunRequest, task: str) -> tuple[data.ResolvedDataset, int]:
    """The run's dataset and its k (--k, else the dataset's), refused before any extraction when a
    kNN result would mean nothing (one class, k beyond the database)."""
    dataset = data.resolve(request.dataset, request.dataset_options)
    k = request.value(K) or dataset.spec.knn_k
    knn.check_shape(task, dataset.key, dataset.splits().get("train", 0), len({r.label for r in dataset.listing.records}), k)
    return dataset, k
