"""Options several tasks take, defined once; a task lists the ones it takes in its spec."""

from __future__ import annotations

from bench.arguments import positive_int
from bench.index import BACKENDS
from bench.tasks.spec import TaskOption

GROUP = TaskOption("group", "processing group: jpeg, sharpening, resizing or interpolation (default: jpeg)", default="jpeg")
K = TaskOption("k", "neighbours for the kNN vote (default: the dataset's; 10 for demo, as the paper on ImageNet)", parse=positive_int)
SEEDS = TaskOption("seeds", "random seeds: the uniform setup's database draws, the probe's label draws (default: 10, as the paper)",
                   default=10, parse=positive_int)
BACKEND = TaskOption("backend", "exact search backend (default: auto)", default="auto", choices=BACKENDS)
