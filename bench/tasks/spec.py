"""What a task is, in one object: its name, the options it takes, what it reads, how it measures,
and which of its metrics a leaderboard shows. Each task module defines one `TaskSpec`; the
registry in `bench.tasks` collects them. A task measures only: the runner (bench.runner) reads
the store, keeps each cell's identity and writes it; the report (bench.report) draws."""

from __future__ import annotations

from dataclasses import dataclass
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Callable, Generic, Mapping, Protocol, TypeVar

from bench.results import Condition
from bench.tables import Grid

if TYPE_CHECKING:
    from bench.bootstrap import Resampled, Resampling
    from bench.data import ResolvedDataset
    from bench.encoders.spec import EncoderSpec
    from bench.picks import Picks
    from bench.vectors import SplitVectors


@dataclass(frozen=True)
class Column:
    """One leaderboard column: its header and the name of a metric the task's cells hold."""

    header: str
    path: str
    interval: bool = False  # show the cell's 95 % bootstrap interval beside the value
    baseline: str | None = None  # metric the interval is judged against (None: 0); marked where it lies outside
    above: bool = False  # marked only where the interval lies above the baseline (a probe below chance carries no trace)
    decimals: int | None = None  # None: the task's
    follow_up: str = ""  # the name "Invisible Shortcuts" (arXiv 2608.05424) gives this measure (MP, SP, SPD)
    absolute: bool = False  # a signed gap the follow-up reports unsigned: exports carry |value| beside it


@dataclass(frozen=True)
class TaskOption:
    """One `run` option a task takes: `--name` on the command line (underscores as dashes)."""

    name: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] | None = None  # argparse type
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Trace:
    """What the trace ranking reads from a task's cells: (metric `path` − metric `baseline`) × sign,
    larger = the encoder carries the trace more strongly."""

    label: str  # e.g. "pos−neg", printed with the ranking
    path: str
    sign: float = 1.0  # -1 where a more negative value is the stronger trace
    baseline: str | None = None  # a metric to subtract first (e.g. chance)
    above: bool = False  # a trace only where the interval lies above the baseline (probes)
    words: str = ""  # what the strength is, in the ranking's rule ("different − same recall")


S = TypeVar("S")  # a task's own settings record


class Counter(Protocol):
    """One long stage's count of finished items."""

    description: str

    def update(self, completed: int | None = None, advance: int = 0, description: str | None = None) -> None: ...


class Progress(Protocol):
    """Where a task reports what the user should see while it measures: the command line owns it
    (a bar on a terminal, timed lines in a log); a task never prints."""

    def stage(self, description: str, total: int, unit: str = "items", note: Callable[[], str] | None = None) -> AbstractContextManager[Counter]:
        """A long stage of `total` items."""

    def note(self, text: str) -> None:
        """A line worth reading once (what a measurement found on the way)."""


class _Quiet:
    description = ""

    def update(self, completed: int | None = None, advance: int = 0, description: str | None = None) -> None:
        return None

    def __enter__(self) -> "_Quiet":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Silent:
    """Progress nobody watches (a Ray worker, a test)."""

    def stage(self, description: str, total: int, unit: str = "items", note: Callable[[], str] | None = None) -> _Quiet:
        return _Quiet()

    def note(self, text: str) -> None:
        return None


SILENT = Silent()


@dataclass(frozen=True)
class Work(Generic[S]):
    """What one run of a task does, decided from its options and the dataset before any extraction:
    the cells' condition (its settings, typed, which the cells record), the rows it reads, and the
    task's own settings for `measure`."""

    condition: Condition
    processings: tuple[str, ...]
    splits: tuple[str, ...]
    settings: S
    unit: str | None = None  # what the bootstrap resamples ("val image"); None: the task has no intervals
    notes: tuple[str | Grid, ...] = ()  # what the user should see before the run (text, or a table: images and classes per split)


@dataclass(frozen=True)
class Inputs(Generic[S]):
    """What `measure` gets for one encoder: the vectors it reads, already loaded, and its settings."""

    encoder: EncoderSpec
    dataset: ResolvedDataset
    vectors: Mapping[str, SplitVectors]  # split -> the split under every processing the work reads
    settings: S
    device: str = "cpu"  # where probes train (--device)
    progress: Progress = SILENT  # the command line's channel for progress and notes


class Outcome(Protocol):
    """A task's typed, frozen record of what it measured for one encoder."""

    def metrics(self) -> dict[str, float]:
        """Every reported number, by flat name ("knn_acc1.all_same")."""

    def resample(self, resampling: Resampling) -> Resampled:
        """The metrics with intervals, in every bootstrap resample of the task's units."""

    def detail(self) -> dict[str, Any]:
        """The task's own record beside the metrics (per-triple accuracies, histograms, trials)."""

    def provenance(self) -> dict[str, Any]:
        """How it was measured (backend, seeds, assignments), for the cell's provenance."""

    def picks(self) -> Picks | None:
        """What its gallery shows, or None."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    work: Callable[[Mapping[str, Any], "ResolvedDataset"], Work]  # the task's options (by name) and the dataset -> its work
    measure: Callable[[Inputs], Outcome]
    columns: tuple[Column, ...]  # the first is the primary metric (the leaderboard's order)
    options: tuple[TaskOption, ...] = ()
    default_dataset: str = "patches"  # what `run` uses without --dataset: offline data that fits the task
    decimals: int = 2  # how the leaderboard prints the metrics
    trace: Trace | None = None  # how the task enters the trace ranking (`leaderboard --view traces`)
    view: str = ""  # its view in bench.report, "module:attribute" (attribute default VIEW), imported only to draw
    version: int = 1  # raised whenever what its cells hold changes: cells of another version are recomputed by `run`, skipped by boards

    @property
    def primary(self) -> str:
        return self.columns[0].path
