"""Options shared by every task's `execute`, as parsed from `python -m bench run`."""

from __future__ import annotations

from dataclasses import dataclass

from bench.workspace import Workspace

DEFAULT_ENCODERS = ("effnet/lite0.in1k", "effnet/lite0.random")


@dataclass(frozen=True)
class RunOptions:
    workspace: Workspace
    dataset: str = "demo"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    group: str = "jpeg"
    k: int | None = None  # None: the dataset's default (10 for ImageNet-like, 1 for iNat)
    seeds: int = 10
    backend: str = "auto"
    device: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    overwrite: bool = False
