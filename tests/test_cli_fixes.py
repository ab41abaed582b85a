"""Lower layers raise what is wrong as data; the command line words the command that fixes it,
from the command the user typed."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

from bench.cli_fixes import explain, index_advice
from bench.errors import (
    DamagedTableError,
    DatasetChangedError,
    DuplicateRowsError,
    FingerprintMismatchError,
    MissingEmbeddingsError,
    Remake,
    UsageError,
)
from bench.invocation import Invocation

RUN = Invocation(("--home", "h", "run", "knn-influence", "--dataset", "imagefolder", "--root", "photos", "--encoders", "a,b"),
                 frozenset({"--rebuild", "--plan"}))
QUERY = Invocation(("--home", "h", "query", "--dataset", "imagefolder", "--root", "photos", "--encoder", "a", "--like", "x.jpg"))


def command_in(line: str) -> list[str]:
    """The words of the one command a message names between backticks."""
    (named,) = [part for index, part in enumerate(line.split("`")) if index % 2]
    return shlex.split(named)


def test_a_stale_table_names_a_rebuild_of_that_encoder_with_the_users_options() -> None:
    error = FingerprintMismatchError("imagefolder.1", "b", "table 't' holds vectors extracted differently (weights x → y)", sharing=2)
    line = explain(error, RUN)
    words = command_in(line)
    assert words[:3] == ["python", "-m", "bench"] and "--rebuild" in words and words[words.index("--encoders") + 1] == "b"
    assert words[words.index("--root") + 1] == "photos" and words[words.index("--home") + 1] == "h"
    assert "then your command again for the other encoders" in line
    assert "python -m bench" not in str(error) and "--rebuild" in str(error)  # the error itself names the fix in words


def test_a_query_under_an_edited_encoder_names_the_extraction_that_remakes_the_same_rows() -> None:
    error = FingerprintMismatchError("imagefolder.1", "a", "holds vectors extracted differently", remake=Remake(("jpeg75_420", "original"), ("val",), "bf16"))
    words = command_in(explain(error, QUERY))
    assert words[3] == "extract" and words[words.index("--processings") + 1] == "jpeg75_420,original"
    assert words[words.index("--splits") + 1] == "val" and words[words.index("--precision") + 1] == "bf16" and "--rebuild" in words
    assert words[words.index("--root") + 1] == "photos" and "--like" not in words  # the dataset's options, not the query's


def test_each_table_error_ends_in_the_command_that_fixes_it() -> None:
    damaged = command_in(explain(DamagedTableError("d", "a", "table 't' cannot be read (missing file)"), QUERY))
    assert damaged[3] == "extract" and "--rebuild" in damaged
    changed = command_in(explain(DatasetChangedError("d", "a", "photos has changed since"), RUN))
    assert changed[3:6] == ["--home", "h", "run"] and "--rebuild" in changed and changed[changed.index("--encoders") + 1] == "a,b"
    repeated = command_in(explain(DuplicateRowsError("d", "a", "2 image(s) stored more than once"), RUN))
    assert repeated == ["python", "-m", "bench", *RUN.arguments]
    absent = command_in(explain(MissingEmbeddingsError("d", "a", "no table for d x a", absent=True), QUERY))
    assert absent[3:6] == ["extract", "--encoders", "a"]
    assert "`" not in explain(MissingEmbeddingsError("d", "a", "no 'val' rows under 'original'"), RUN)  # no command fixes it
    assert explain(UsageError("--k 0: must be positive"), RUN) == "--k 0: must be positive"
    assert command_in(index_advice("a", QUERY))[3:] == ["vector-index", "build", "--encoder", "a", "--home", "h", "--dataset",
                                                      "imagefolder", "--root", "photos"]


def test_only_the_command_line_knows_the_command() -> None:
    package = Path(__file__).resolve().parents[1] / "bench"
    importers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if "bench.invocation" in names or module == "bench.invocation" or (module == "bench" and "invocation" in names):
                importers.add(path.relative_to(package).as_posix())
    assert importers <= {"__main__.py", "cli_fixes.py"}, importers
