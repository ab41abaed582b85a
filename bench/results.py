"""Result cells: one JSON per (task, dataset, encoder, condition), written atomically and read
back through one typed schema. A metric a reader asks for that the cell does not hold is an
error naming the cell and the metrics it has, never a blank."""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import bench
from bench.encoders.spec import FAMILIES
from bench.errors import BenchError
from bench.measures import Test
from bench.naming import encoder_slug
from bench.picks import Picks
from bench.runtime import package_versions

SCHEMA = 3  # 3: the tests that mark effects (p-values) beside the intervals; 2: flat metrics, intervals, picks, inputs


Setting = str | int | float | bool  # one typed setting of a cell, as its JSON holds it


class MissingSettingError(BenchError, KeyError):
    """A reader asked a cell for a setting its task did not record."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Condition:
    """The settings that tell one task's cells apart, typed: the cell records them, and its file is
    named by `text` ("group=jpeg,k=10,seeds=5")."""

    settings: tuple[tuple[str, Setting], ...]

    @property
    def text(self) -> str:
        return ",".join(f"{name}={value}" for name, value in self.settings)

    def as_dict(self) -> dict[str, Setting]:
        return dict(self.settings)


class MissingMetricError(BenchError, KeyError):
    """A reader asked a cell for a metric it does not hold (a column naming a field that does not exist)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class CellKey:
    task: str
    dataset: str  # the dataset's key in the store
    encoder: str
    condition: str  # e.g. "group=jpeg,k=10": what distinguishes cells of one task

    def path(self, results_dir: Path) -> Path:
        return results_dir / self.task / self.dataset / encoder_slug(self.encoder) / f"{self.condition}.json"


def board_of(path: Path) -> tuple[str, str]:
    """The (dataset, condition) a cell file's place in the results folder names (CellKey.path's layout),
    readable even when the file itself is not."""
    return path.parent.parent.name, path.stem


@dataclass(frozen=True)
class Cell:
    """One task's numbers for one encoder on one dataset under one condition, and what made them."""

    key: CellKey
    family: str
    metrics: Mapping[str, float]  # flat names, e.g. "knn_acc1.all_same"
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # 95 % paired bootstrap intervals
    resamples: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # the trace measure in every resample
    tests: Mapping[str, Test] = field(default_factory=dict)  # metric -> its one-sided test of no trace (p-value)
    detail: Mapping[str, Any] = field(default_factory=dict)  # the task's own record (per-triple accuracies, histograms, …)
    picks: Picks | None = None  # what its gallery shows
    inputs: Mapping[str, Any] = field(default_factory=dict)  # bench.identity.CellInputs, as JSON
    dataset_identity: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Setting] = field(default_factory=dict)  # the condition's settings, typed
    task_version: int = 1  # the version of the task that measured it (TaskSpec.version)

    def __post_init__(self) -> None:
        if not self.settings:  # a cell written before cells recorded their settings, or made by hand: its condition's text
            object.__setattr__(self, "settings", _parsed(self.condition))
        elif condition(**self.settings).text != self.condition:
            raise ValueError(f"settings {dict(self.settings)} do not make the condition {self.condition!r}")

    @property
    def task(self) -> str:
        return self.key.task

    @property
    def dataset(self) -> str:
        return self.key.dataset

    @property
    def encoder(self) -> str:
        return self.key.encoder

    @property
    def condition(self) -> str:
        return self.key.condition

    def value(self, name: str) -> float:
        """The metric `name`; one the cell does not hold is an error (NaN is a value: a measure that is undefined here)."""
        try:
            return self.metrics[name]
        except KeyError:
            raise MissingMetricError(f"{self.task} cell of {self.encoder} on {self.dataset} ({self.condition}) has no metric {name!r}; "
                                     f"it has {', '.join(self.metrics)}") from None

    def interval(self, name: str) -> tuple[float, float] | None:
        """The 95 % interval of the metric `name`, or None where the cell was computed without intervals."""
        self.value(name)
        return self.intervals.get(name)

    def test(self, name: str) -> Test | None:
        """The test that marks the metric `name`, or None where the cell has none for it."""
        self.value(name)
        return self.tests.get(name)

    def setting(self, name: str) -> Setting:
        """The setting `name` of the cell's condition; one the task did not record is an error naming it."""
        try:
            return self.settings[name]
        except KeyError:
            raise MissingSettingError(f"{self.task} cell of {self.encoder} on {self.dataset} ({self.condition}) records no setting "
                                      f"{name!r}; it records {', '.join(self.settings) or 'none'}") from None

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "task": self.task, "dataset": self.dataset, "encoder": self.encoder, "condition": self.condition,
            "family": self.family, "metrics": dict(self.metrics), "intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
            "resamples": {name: list(values) for name, values in self.resamples.items()},
            "tests": {name: test.as_json() for name, test in self.tests.items()}, "detail": dict(self.detail),
            "picks": self.picks.as_json() if self.picks is not None else None, "inputs": dict(self.inputs),
            "dataset_identity": dict(self.dataset_identity), "provenance": dict(self.provenance), "settings": dict(self.settings),
            "task_version": self.task_version,
        }

    @classmethod
    def from_json(cls, document: Any) -> "Cell":
        """The cell a JSON document holds; one that does not fit the schema raises ValueError saying why."""
        if not isinstance(document, dict):
            raise ValueError("not a result cell (a JSON object is expected)")
        if document.get("schema") != SCHEMA:
            raise ValueError(f"written by another bench (schema {document.get('schema', 1)}, this bench reads {SCHEMA})")
        for name in ("task", "dataset", "encoder", "condition", "family"):
            if not isinstance(document.get(name), str):
                raise ValueError(f"not a result cell (no {name!r} text)")
        metrics = _mapping(document, "metrics")
        if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in metrics.values()):
            raise ValueError("metrics must be numbers")
        intervals = _mapping(document, "intervals")
        if not all(isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)
                   for bounds in intervals.values()):
            raise ValueError("intervals must be [low, high] pairs")
        picks = document.get("picks")
        settings = _mapping(document, "settings")
        if not all(isinstance(value, (str, int, float, bool)) for value in settings.values()):
            raise ValueError("settings must be numbers, text or true/false")
        version = document.get("task_version", 1)  # cells written before tasks had versions: the first
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("task_version must be a whole number")
        return cls(
            CellKey(document["task"], document["dataset"], document["encoder"], document["condition"]), document["family"],
            {name: float(value) for name, value in metrics.items()},
            {name: (float(low), float(high)) for name, (low, high) in intervals.items()},
            {name: tuple(float(value) for value in values) for name, values in _mapping(document, "resamples").items()},
            {name: Test.from_json(found) for name, found in _mapping(document, "tests").items()},
            _mapping(document, "detail"), Picks.from_json(picks) if picks is not None else None, _mapping(document, "inputs"),
            _mapping(document, "dataset_identity"), _mapping(document, "provenance"), settings, version,
        )


def _mapping(document: dict[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ValueError(f"{name!r} must be an object")
    return value


def _parsed(condition: str) -> dict[str, Setting]:
    """The settings of a cell written before cells recorded them, read back from its condition's text."""
    return dict(part.split("=", 1) for part in condition.split(",") if "=" in part)


def condition(**settings: Setting) -> Condition:
    """A task's condition from its settings, in a stable order."""
    for name, value in settings.items():
        if not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"setting {name!r} must be a number, text or true/false, not {type(value).__name__}")
    return Condition(tuple(sorted(settings.items())))


def setting(cells: list[Cell], name: str) -> str:
    """A setting of the cells as they record it ("30"; "2 or 30" if the cells differ); one a cell
    lacks is an error naming it."""
    return " or ".join(sorted({str(cell.setting(name)) for cell in cells}))


def git_sha() -> str | None:
    """The commit of the bench checkout that produced a result, if it is a git checkout."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(bench.__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def provenance(**extra: Any) -> dict[str, Any]:
    return {
        "bench_version": bench.__version__,
        "git_sha": git_sha(),
        "packages": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def write(cell: Cell, results_dir: Path) -> Path:
    """Write the cell's JSON atomically: readers see the old file or the whole new one."""
    path = cell.key.path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; results are as shareable as any file the user writes
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(cell.as_json(), out, indent=2, sort_keys=True, allow_nan=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def supersede(key: CellKey, results_dir: Path, superseded_dir: Path, inputs: Mapping[str, Any]) -> Path | None:
    """Move the cell's stored file aside, under the same relative path with its creation time
    added, when it was computed from other inputs than `inputs` or written by another version of
    the cell format: its numbers stay readable, out of the leaderboards. A cell of the same
    inputs (--overwrite) is simply replaced."""
    path = key.path(results_dir)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        document = None  # damaged: replaced, not kept
    if not isinstance(document, dict) or (document.get("inputs") == dict(inputs) and document.get("schema") == SCHEMA):
        return None
    created = str((document.get("provenance") or {}).get("created", "")).replace(":", "") or str(int(path.stat().st_mtime))
    target = superseded_dir / path.relative_to(results_dir).with_name(f"{path.stem}@{created}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@dataclass(frozen=True)
class Damaged:
    """A file under the results folder that is not a readable cell."""

    path: Path
    reason: str

    def line(self) -> str:
        return f"skipped {self.path}: {self.reason}; `run` recomputes it (or delete the file)"


def load(path: Path, expected: CellKey | None = None) -> Cell:
    """The cell stored at `path`; a file that does not parse or fit the schema raises ValueError."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not text") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at line {error.lineno})") from None
    cell = Cell.from_json(document)
    if expected is not None and cell.key != expected:
        raise ValueError("holds another cell than its path says")
    return cell


def stored(key: CellKey, results_dir: Path) -> tuple[Cell | None, str | None]:
    """The cell stored under `key`, or None with why a file there cannot be read as it (None when
    there is no file): an unreadable cell is recomputed."""
    path = key.path(results_dir)
    if not path.is_file():
        return None, None
    try:
        return load(path, key), None
    except (OSError, ValueError) as error:
        return None, str(error)


def read_cells(results_dir: Path, task: str | None = None) -> tuple[list[Cell], list[Damaged]]:
    """Every readable cell (optionally of one task) in a stable order, and the damaged files."""
    root = results_dir / task if task else results_dir
    cells: list[Cell] = []
    damaged: list[Damaged] = []
    for path in sorted(root.glob("**/*.json")):
        try:
            found = load(path)
        except (OSError, ValueError) as error:
            damaged.append(Damaged(path, str(error)))
            continue
        if task is not None and found.task != task:
            damaged.append(Damaged(path, f"a {found.task!r} cell in the {task!r} folder"))
            continue
        cells.append(found)
    return cells, damaged


def format_value(value: float | None, decimals: int = 2) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value + 0.0 if round(value, decimals) else 0.0:.{decimals}f}"  # no "-0.00"


def by_family(primary: str, cells: list[Cell]) -> list[tuple[str, list[Cell]]]:
    """Cells grouped by family (CVL, SSL, SUP, others), each group best first by `primary`."""
    families = sorted({cell.family for cell in cells}, key=lambda f: (FAMILIES.index(f) if f in FAMILIES else 99, f))
    groups = []
    for family in families:
        members = [cell for cell in cells if cell.family == family]
        members.sort(key=lambda cell: (-_sortable(cell.value(primary)), cell.encoder))
        groups.append((family, members))
    return groups


def _sortable(value: float) -> float:
    return float("-inf") if math.isnan(value) else value


def ordered(primary: str, cells: list[Cell]) -> list[Cell]:
    """Cells in leaderboard order: by family, best first within each."""
    return [cell for _, members in by_family(primary, cells) for cell in members]
