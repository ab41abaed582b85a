"""How encoder names become path and table parts (one rule for the store, results and rejects)."""

from __future__ import annotations

import re


DEPTH_MARK = "@"  # `NAME@blockN`: the encoder NAME read at an intermediate block (bench.encoders.depth)


def split_depth(encoder: str) -> tuple[str, str | None]:
    """`NAME@suffix` -> (NAME, suffix); a name without the mark -> (name, None)."""
    base, mark, suffix = encoder.partition(DEPTH_MARK)
    return (base, suffix) if mark else (encoder, None)


def encoder_slug(encoder: str) -> str:
    """`family/arch.tag` -> `family--arch.tag` (and a depth `@blockN` -> `--blockN`, as LanceDB table
    names refuse `@`): a single path component that still reads as the name."""
    return encoder.replace("/", "--").replace("@", "--")


def safe_part(text: str) -> str:
    """Any text as a file- and table-name part: letters, digits, `_ . - @` kept, the rest `-`."""
    return re.sub(r"[^A-Za-z0-9_.@-]", "-", text)
