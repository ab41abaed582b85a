"""The one base class of errors a user can fix.

Every message names the input at fault and what to do about it. `python -m bench` prints such
an error on one line and exits with status 2; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations


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
