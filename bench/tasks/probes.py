"""What the two probe tasks share (docs/protocol.md#linear-probe): their options, the outcome
record, the search-progress bar and the cell entries. The tasks themselves are
`probe_processing` and `probe_acquisition`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from bench import bootstrap
from bench.arguments import positive_int
from bench.errors import BenchError
from bench.seeding import stable_int
from bench.tasks.linear_probe import SCHEDULES, ProbeSettings, Search, Trial
from bench.tasks.spec import Progress, TaskOption

if TYPE_CHECKING:  # torch loads only when a probe trains
    import torch

_PAPER = ProbeSettings()
TRIALS = TaskOption("trials", f"hyper-parameter search trials (default: {_PAPER.trials}, as the paper)", default=_PAPER.trials, parse=positive_int)
EPOCHS = TaskOption("epochs", f"training epochs per probe (default: {_PAPER.epochs}, as the paper)", default=_PAPER.epochs, parse=positive_int)
SCHEDULE = TaskOption(
    "schedule",
    "learning-rate schedule: paper = cosine stepped with the epoch index after each epoch (epochs 0 and 1 at the "
    "initial rate, as the paper's code), cosine = the textbook curve from epoch 0 (default: paper)",
    default=_PAPER.schedule, choices=SCHEDULES,
)


class ProbeDataError(BenchError, ValueError):
    """The dataset cannot be probed as asked (a split or a class is missing)."""


@dataclass(frozen=True)
class ProbeOutcome:
    """A probe's search and its final evaluation (one entry per final seed)."""

    search: Search
    acc1: np.ndarray  # (S,) test top-1 accuracy in %
    mean_class_acc: np.ndarray  # (S,) test mean per-class accuracy in %
    diverged: np.ndarray  # (S,) bool: the final run's loss went non-finite
    classes: int
    train_rows: int
    test_rows: int
    search_rows: tuple[int, int]  # (rows the search trains on, rows it scores on)
    hits: np.ndarray  # (S, test rows) bool: each final probe's verdict on each test row
    predictions: np.ndarray | None = None  # (S, test rows): the class each final probe names (the tests permute labels against them)

    def per_image(self, images: int) -> np.ndarray:
        """Accuracy (%) per test image over the seeds and the image's test rows (rows are
        version-major: row v · images + i is image i under version v)."""
        return 100.0 * self.hits.reshape(len(self.hits), -1, images).mean(axis=(0, 1))


def final_seed(seed: int) -> int:
    """The training seed (initial weights, epoch orders) of the final run for label seed `seed`."""
    return stable_int(f"{seed}|probe-final")


def tensor(values: np.ndarray, device: "torch.device | str") -> "torch.Tensor":
    import torch

    return torch.as_tensor(np.ascontiguousarray(values), device=device)


def settings_of(options: Mapping[str, Any]) -> ProbeSettings:
    return ProbeSettings(epochs=options[EPOCHS.name], trials=options[TRIALS.name], schedule=options[SCHEDULE.name])


def settings_condition(settings: ProbeSettings) -> dict[str, object]:
    """The settings that enter a probe cell's condition, so results of different settings never mix."""
    return {"trials": settings.trials, "epochs": settings.epochs, "schedule": settings.schedule}


def search_metrics(found: Search) -> dict[str, float]:
    """The search's best setting and its held-out accuracy, as the cell's `search.*` metrics."""
    best = found.best
    return {"search.lr": best.lr, "search.wd": best.wd, "search.val_acc1": best.val_acc1, "search.trial": best.number, "search.seed": found.seed}


def trials_record(found: Search) -> list[dict[str, object]]:
    return [asdict(trial) for trial in found.trials]


class TrialProgress:
    """Progress over the search trials and the final training, reported to the run's channel."""

    def __init__(self, progress: Progress, encoder: str, trials: int):
        self.best = float("-inf")
        self.description = f"probe {encoder}: search"
        self.stage = progress.stage(self.description, trials + 1, unit="trials", note=self._best)

    def _best(self) -> str:
        return f"best val {max(self.best, 0.0):.2f}%"

    def __enter__(self) -> "TrialProgress":
        self.counter = self.stage.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stage.__exit__(*exc)

    def trial(self, done: Trial) -> None:
        self.best = max(self.best, done.val_acc1)
        self.counter.update(advance=1)

    def finished(self) -> None:
        self.counter.update(advance=1, description=self.description.replace("search", "search and final fit"))

