"""Options several tasks take, defined once; a task lists the ones it takes in its spec."""

from __future__ import annotations

from typing import Any, Mapping

from bench import data, knn, processing
from bench.arguments import non_negative_int, positive_int
from bench.bootstrap import DEFAULT_PERMUTATIONS, DEFAULT_RESAMPLES, SEED, Resampling
from bench.exact_search import BACKENDS
from bench.tasks.spec import TaskOption
from bench.versioned_search import SEARCHES

GROUP = TaskOption("group", f"processing group: {', '.join(processing.GROUPS)} (default: {processing.DEFAULT_GROUP})",
                   default=processing.DEFAULT_GROUP)
K = TaskOption("k", "neighbours for the kNN vote (default: the dataset's; 10 for patches and demo, as the paper on ImageNet)",
               parse=positive_int)
SEEDS = TaskOption("seeds", "random seeds: the uniform setup's database draws, the probe's label draws (default: 10, as the paper)",
                   default=10, parse=positive_int)
BACKEND = TaskOption("backend", "exact search backend: auto picks faiss-gpu (a FAISS GPU build that sees a GPU), then torch on CUDA, "
                     "then faiss-cpu (default: auto)", default="auto", choices=BACKENDS)
SEARCH = TaskOption(
    "search",
    "how knn-influence finds the neighbours of its K^3 databases: versioned = each version's scores once per block of queries, on "
    "torch (CUDA when present); restricted = plain class-restricted searches on --backend (default: versioned)",
    default="versioned", choices=SEARCHES,
)
BOOTSTRAP = TaskOption(
    "bootstrap",
    f"bootstrap resamples of the dataset's units for the 95 %% intervals on every effect (default: {DEFAULT_RESAMPLES}, seed {SEED}; "
    "0 switches intervals off)",
    default=DEFAULT_RESAMPLES, parse=non_negative_int,
)
PERMUTATIONS = TaskOption(
    "permutations",
    f"most permutations per test of no trace; the smallest p-value is 1 / (permutations + 1), so a board of m tests needs about "
    f"20 m to mark a lone effect (default: {DEFAULT_PERMUTATIONS}; 0 switches the tests and marks off)",
    default=DEFAULT_PERMUTATIONS, parse=non_negative_int,
)


def inference(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Resampling | None:
    """The intervals' and tests' settings a task's options ask for, resampling the dataset's units
    (None: the task takes no --bootstrap)."""
    if BOOTSTRAP.name not in options:
        return None
    return Resampling(options[BOOTSTRAP.name], unit=dataset.unit_name, permutations=options.get(PERMUTATIONS.name, DEFAULT_PERMUTATIONS))


def knn_k(task: str, options: Mapping[str, Any], dataset: data.ResolvedDataset) -> int:
    """The run's k (--k, else the dataset's), refused when a kNN result would mean nothing (one
    class, k beyond the database)."""
    k = options[K.name] or dataset.spec.knn_k
    knn.check_shape(task, dataset.key, dataset.splits().get("train", 0), len({r.label for r in dataset.listing.records}), k)
    return k
