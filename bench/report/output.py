"""Where an exported table goes: the file the user named with --out, or the terminal as plain text."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def emit(text: str, out: Path | None, console: Console, errors: Console | None, what: str) -> None:
    """`text` into `out` (saying so, naming `what`, on the error console) or onto `console` unstyled."""
    if out is not None:
        out.write_text(text, encoding="utf-8")
        (errors or console).print(f"wrote {what} to {out}")
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
