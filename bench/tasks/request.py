"""What `run` hands a task: the dataset, the encoders, how to extract, and the task's own options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from rich.console import Console

from bench.data import DatasetOptions
from bench.extraction.settings import ExtractionSettings
from bench.workspace import Workspace

if TYPE_CHECKING:
    from bench.encoders.spec import EncoderSpec
    from bench.tasks.spec import TaskOption

DEFAULT_ENCODERS = ("effnet/lite0.in1k", "effnet/lite0.random")


@dataclass(frozen=True)
class RunRequest:
    workspace: Workspace
    dataset: str = "demo"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    dataset_options: DatasetOptions = DatasetOptions()
    extraction: ExtractionSettings = ExtractionSettings()
    overwrite: bool = False
    rebuild: bool = False  # drop the encoders' tables for the dataset and extract again
    plan_only: bool = False  # say what the run would extract and how long it would take, then stop
    weights: str | None = None  # a local checkpoint replacing the (single) encoder's weights
    values: Mapping[str, Any] = field(default_factory=dict)  # the task's own options, by name
    console: Console = field(default_factory=lambda: Console(stderr=True))

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for Ray tasks: the console stays in this process."""
        return {name: value for name, value in self.__dict__.items() if name != "console"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in {**state, "console": Console(stderr=True, quiet=True)}.items():
            object.__setattr__(self, name, value)

    def value(self, option: "TaskOption") -> Any:
        """The option's value in this run (its default when not given)."""
        return self.values.get(option.name, option.default)

    def encoder_specs(self) -> list["EncoderSpec"]:
        """The specs to run, with --weights applied."""
        from bench import encoders
        from bench.encoders.custom import with_weights

        specs = [encoders.get(name) for name in self.encoders]
        return [with_weights(spec, self.weights) for spec in specs] if self.weights else specs
