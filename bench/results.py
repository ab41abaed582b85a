"""Result cells: one JSON per (task, dataset, encoder, condition), written atomically."""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench
from bench.encoders.spec import FAMILIES
from bench.naming import encoder_slug


@dataclass(frozen=True)
class Cell:
    task: str
    dataset: str
    encoder: str
    condition: str  # e.g. "group=jpeg,k=10": what distinguishes cells of one task

    def path(self, results_dir: Path) -> Path:
        return results_dir / self.task / self.dataset / encoder_slug(self.encoder) / f"{self.condition}.json"


def condition(**parts: object) -> str:
    """A stable, readable condition string from keyword parts."""
    return ",".join(f"{key}={value}" for key, value in sorted(parts.items()))


def setting(cells: list[dict[str, Any]], name: str) -> str:
    """A part of the cells' condition as they record it ("30"; "2 or 30" if the cells differ)."""
    values = sorted({dict(part.split("=", 1) for part in cell["condition"].split(",") if "=" in part).get(name, "?") for cell in cells})
    return " or ".join(values)


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
    from bench.runtime import package_versions

    return {
        "bench_version": bench.__version__,
        "git_sha": git_sha(),
        "packages": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def write(cell: Cell, results_dir: Path, payload: dict[str, Any]) -> Path:
    """Write the cell's JSON atomically: readers see the old file or the whole new one."""
    path = cell.path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"task": cell.task, "dataset": cell.dataset, "encoder": cell.encoder, "condition": cell.condition, **payload}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; results are as shareable as any file the user writes
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, sort_keys=True, allow_nan=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def supersede(cell: Cell, results_dir: Path, superseded_dir: Path, inputs: dict[str, Any]) -> Path | None:
    """Move the cell's stored file aside, under the same relative path with its creation time
    added, when it was computed from other inputs than `inputs`: its numbers stay readable, out
    of the leaderboards. A cell of the same inputs (--overwrite) is simply replaced."""
    path = cell.path(results_dir)
    stored_cell = stored(cell, results_dir)
    if stored_cell is None or stored_cell.get("inputs") == inputs:
        return None
    created = str(stored_cell.get("provenance", {}).get("created", "")).replace(":", "") or str(int(path.stat().st_mtime))
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


REQUIRED = {"task": str, "dataset": str, "encoder": str, "condition": str, "metrics": dict}


def load(path: Path, expected: Cell | None = None) -> dict[str, Any]:
    """The cell stored at `path`; a file that does not parse or validate raises ValueError."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not text") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(document, dict):
        raise ValueError("not a result cell (a JSON object is expected)")
    for key, kind in REQUIRED.items():
        if not isinstance(document.get(key), kind):
            raise ValueError(f"not a result cell (no {key!r} {kind.__name__})")
    if expected is not None and (document["task"], document["dataset"], document["encoder"], document["condition"]) != (
        expected.task, expected.dataset, expected.encoder, expected.condition
    ):
        raise ValueError("holds another cell than its path says")
    return document


def stored(cell: Cell, results_dir: Path) -> dict[str, Any] | None:
    """The cell's stored document, or None when it is absent or damaged (then it is recomputed)."""
    path = cell.path(results_dir)
    if not path.is_file():
        return None
    try:
        return load(path, cell)
    except (OSError, ValueError):
        return None


def read_cells(results_dir: Path, task: str | None = None) -> tuple[list[dict[str, Any]], list[Damaged]]:
    """Every readable cell (optionally of one task) in a stable order, and the damaged files."""
    root = results_dir / task if task else results_dir
    cells: list[dict[str, Any]] = []
    damaged: list[Damaged] = []
    for path in sorted(root.glob("**/*.json")):
        try:
            document = load(path)
        except (OSError, ValueError) as error:
            damaged.append(Damaged(path, str(error)))
            continue
        if task is not None and document["task"] != task:
            damaged.append(Damaged(path, f"a {document['task']!r} cell in the {task!r} folder"))
            continue
        cells.append(document)
    return cells, damaged


def metric(cell: dict[str, Any], dotted: str) -> float | None:
    """The number at a dotted path of the cell's metrics, or None."""
    value: Any = cell.get("metrics", {})
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


INTERVALS = "ci95"  # metrics key: {dotted metric path: [low, high]}, the paired bootstrap's 95 % intervals
RESAMPLES = "resamples"  # metrics key: {dotted metric path: [value in resample r]} for the trace measure


def interval(cell: dict[str, Any], dotted: str) -> tuple[float, float] | None:
    """The stored 95 % interval of the metric at `dotted`, or None (no bootstrap, or an older cell)."""
    found = cell.get("metrics", {}).get(INTERVALS, {})
    bounds = found.get(dotted) if isinstance(found, dict) else None
    if isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds):
        return float(bounds[0]), float(bounds[1])
    return None


def format_value(value: float | None, decimals: int = 2) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value + 0.0 if round(value, decimals) else 0.0:.{decimals}f}"  # no "-0.00"


def by_family(primary: str, cells: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Cells grouped by family (CVL, SSL, SUP, others), each group best first by `primary`."""
    families = sorted({cell.get("family", "?") for cell in cells}, key=lambda f: (FAMILIES.index(f) if f in FAMILIES else 99, f))
    groups = []
    for family in families:
        members = [cell for cell in cells if cell.get("family", "?") == family]
        members.sort(key=lambda cell: (-(metric(cell, primary) or float("-inf")), cell["encoder"]))
        groups.append((family, members))
    return groups


def ordered(primary: str, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells in leaderboard order: by family, best first within each."""
    return [cell for _, members in by_family(primary, cells) for cell in members]
