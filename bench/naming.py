"""How encoder names become path and table parts (one rule for the store, results and rejects)."""

from __future__ import annotations

import re


def encoder_slug(encoder: str) -> str:
    """`family/arch.tag` -> `family--arch.tag` (and a depth `@blockN` -> `--blockN`, as LanceDB table
    names refuse `@`): a single path component that still reads as the name."""
    return encoder.replace("/", "--").replace("@", "--")


def safe_part(text: str) -> str:
    """Any text as a file- and table-name part: letters, digits, `_ . - @` kept, the rest `-`."""
    return re.sub(r"[^A-Za-z0-9_.@-]", "-", text)
