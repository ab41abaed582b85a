"""The one base class of errors a user can fix.

Every message names the input at fault and what to do about it. `python -m bench` prints such
an error on one line and exits with status 2; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class BenchError(Exception):
    """A problem with the user's input, options, data or environment, explained in the message."""


class DataError(BenchError):
    """A dataset folder or annotation file cannot be used as asked."""


class DependencyError(BenchError, ImportError):
    """An optional package that this feature needs is not installed."""


class UsageError(BenchError, ValueError):
    """Options that cannot work together, or a value out of range."""


class NoResultsError(BenchError):
    """There are no result cells to show."""


class TableError(BenchError):
    """A problem with one (dataset, encoder) table, said as data: which table and what is wrong
    (`problem`). The message names the fix in words; the command line names the command that
    fixes it (bench.cli_fixes), since only it knows the command the user typed."""

    fix = ""  # the fix in words, after the problem

    def __init__(self, dataset: str, encoder: str, problem: str):
        self.dataset, self.encoder, self.problem = dataset, encoder, problem
        super().__init__(f"{problem}; {self.fix}" if self.fix else problem)


class DamagedTableError(TableError):
    """A table's files cannot be read: missing, truncated or from an incompatible writer."""

    fix = "if its files are damaged, rebuild it (extract it again with --rebuild)"


class FingerprintMismatchError(TableError, RuntimeError):
    """A table holds vectors extracted differently from what is being asked now."""

    fix = "rebuild it (extract it again with --rebuild), or use another --home."

    def __init__(self, dataset: str, encoder: str, problem: str, *, sharing: int = 1, remake: "Remake | None" = None):
        self.sharing = sharing  # encoders the command works on: a rebuild of this one is followed by the command again
        self.remake = remake  # what the table holds, when its remaking is the fix (a query under an edited encoder)
        super().__init__(dataset, encoder, problem)


@dataclass(frozen=True)
class Remake:
    """What an extraction that remakes a table with the same rows extracts."""

    processings: tuple[str, ...]
    splits: tuple[str, ...]
    precision: str


class MissingEmbeddingsError(TableError, LookupError):
    """Vectors a reader needs are not in the store. `absent`: there is no table at all."""

    def __init__(self, dataset: str, encoder: str, problem: str, *, absent: bool = False):
        self.absent = absent
        super().__init__(dataset, encoder, problem)

    @property
    def fix(self) -> str:  # type: ignore[override]
        return "extract it first" if self.absent else ""


class DuplicateRowsError(MissingEmbeddingsError):
    """A table holds an image more than once under one split and processing."""

    fix = "running the command again repairs the table before it reads it"


class DatasetChangedError(TableError):
    """A table was extracted from a folder whose listing has changed since."""

    fix = "re-extract it (with --rebuild), or use another --home."
