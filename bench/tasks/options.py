"""Options shared by every task's `execute`, as parsed from `python -m bench run`."""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

from bench.tasks.linear_probe import ProbeSettings
from bench.workspace import Workspace

if TYPE_CHECKING:
    from bench.data import DatasetOptions
    from bench.encoders.spec import EncoderSpec

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
    weights: str | None = None  # a local checkpoint replacing the (single) encoder's weights
    root: str | None = None  # the dataset's folder, for datasets that live on disk
    attribute: str | None = None  # label attribute, for datasets with several
    trials: int = ProbeSettings.trials  # probes: hyper-parameter search trials
    epochs: int = ProbeSettings.epochs  # probes: training epochs
    schedule: str = ProbeSettings.schedule  # probes: learning-rate schedule
    mask: str = "mask95"  # probe-acquisition: the processing the images are embedded under

    def dataset_options(self) -> "DatasetOptions":
        from pathlib import Path

        from bench.data import DatasetOptions

        return DatasetOptions(root=Path(self.root).expanduser() if self.root else None, attribute=self.attribute)

    def encoder_specs(self) -> list["EncoderSpec"]:
        """The specs to run, with --weights applied."""
        from bench import encoders
        from bench.encoders.custom import with_weights

        specs = [encoders.get(name) for name in self.encoders]
        return [with_weights(spec, self.weights) for spec in specs] if self.weights else specs
