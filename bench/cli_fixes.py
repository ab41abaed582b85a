"""The command that fixes an error, as the user would type it: lower layers say what is wrong as
data (which table, what it holds); only the command line knows the command the user ran, so only
it words the fix as a command (the user's own options, changed only where the fix changes them)."""

from __future__ import annotations

from bench.errors import (
    BenchError,
    DamagedTableError,
    DatasetChangedError,
    DuplicateRowsError,
    FingerprintMismatchError,
    MissingEmbeddingsError,
)
from bench.invocation import Invocation


def explain(error: BenchError, command: Invocation) -> str:
    """The error's one line, ending in the command that fixes it where there is one."""
    if isinstance(error, DamagedTableError):
        return f"{error.problem}; if its files are damaged, rebuild it: `{command.rebuild(error.encoder)}`"
    if isinstance(error, FingerprintMismatchError) and error.remake is not None:
        made = error.remake
        remake = command.command("extract", "--encoders", error.encoder, "--processings", ",".join(made.processings),
                                 "--splits", ",".join(made.splits), "--precision", made.precision, "--rebuild")
        return (f"{error.problem}; query it with the encoder as it was then (the same --encoders-file and weights), or "
                f"re-extract it as the encoder is now: `{remake}`, or use another --home.")
    if isinstance(error, FingerprintMismatchError):
        others = ", then your command again for the other encoders" if error.sharing > 1 else ""
        return f"{error.problem}; rebuild it: `{command.rebuild(error.encoder)}`{others}, or use another --home."
    if isinstance(error, DatasetChangedError):
        return f"{error.problem}; re-extract: `{command.rerun(add=('--rebuild',))}`, or use another --home."
    if isinstance(error, DuplicateRowsError):
        return f"{error.problem}; `{command.rerun()}` repairs the table before it reads it"
    if isinstance(error, MissingEmbeddingsError) and error.absent:
        return f"{error.problem}. Extract first: `{command.command('extract', '--encoders', error.encoder)}`"
    return str(error)


def index_advice(encoder: str, command: Invocation) -> str:
    """The command that builds (or rebuilds) a table's vector index, for `query --like`."""
    return f"`{command.command('vector-index', 'build', '--encoder', encoder)}` builds the index"
