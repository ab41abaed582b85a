"""MkDocs hook: the CLI reference page is rendered from bench's argparse parser on every build,
so it cannot drift from the code. The page holds a marker line that is replaced by the --help
of the command and of every verb (and every verb's sub-verbs), in parser order."""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from typing import Iterator

MARKER = "<!-- cli-reference -->"
WIDTH = "100"  # argparse wraps help at $COLUMNS: fixed, so the page does not depend on who builds it


@contextmanager
def _columns(width: str) -> Iterator[None]:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(verb words, parser) for the parser and every sub-parser below it, depth first in declaration order."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*words, name))


def render() -> str:
    """The reference as Markdown: one section per command with its --help."""
    from bench.__main__ import build_parser

    with _columns(WIDTH):
        parser = build_parser()
        sections = []
        for words, command in commands(parser):
            title = " ".join(("python -m bench", *words))
            anchor = "-".join(words) if words else "bench"
            help_text = command.format_help().rstrip()
            sections.append(f"## `{title}` {{#{anchor}}}\n\n```text\n{help_text}\n```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 (MkDocs' hook signature)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
