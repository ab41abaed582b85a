"""Value types for command-line options, shared by `python -m bench` and the benchmark scripts."""

from __future__ import annotations

import argparse
import math

from bench import processing


def comma_list(text: str) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c"); a list with no name in it is refused."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing; give one or more comma-separated names")
    return names


def split_map(text: str) -> tuple[tuple[str, str], ...]:
    """"train=train,val=validation" -> (("train", "train"), ("val", "validation")): bench's splits to a dataset's."""
    pairs = []
    for part in comma_list(text):
        ours, _, theirs = part.partition("=")
        if ours.strip() not in ("train", "val", "test") or not theirs.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: write SPLIT=NAME with SPLIT one of train, val, test (e.g. val=validation)")
        pairs.append((ours.strip(), theirs.strip()))
    return tuple(pairs)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds, 0 or more ("nan", "inf" and "-1" are refused)."""
    return _finite_at_least_zero(text, "a number of seconds")


def non_negative_number(text: str) -> float:
    """A finite number, 0 or more ("nan", "inf" and negatives are refused)."""
    return _finite_at_least_zero(text, "a number")


def _finite_at_least_zero(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be {what.replace('a ', 'a finite ', 1)}, 0 or more, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def masking_op(text: str) -> str:
    """A masked share of the crop ("0.95", "0.9", ...) or "none" -> the processing op's name."""
    if text.strip().lower() == "none":
        return "original"
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    name = processing.mask(ratio).name if 0.0 <= ratio <= 1.0 else ""
    if name not in processing.PROCESSINGS:
        choices = ", ".join(str(processing.get(op).param("ratio")) for op in processing.MASK_SWEEP)
        raise argparse.ArgumentTypeError(f"{text!r} is not a masking ratio bench has; choose one of {choices}, or none (unmasked files)")
    return name
