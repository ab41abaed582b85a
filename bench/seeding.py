"""Randomness keyed by (seed, image_id, purpose), independent of worker order."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_int(text: str) -> int:
    """A 64-bit integer that depends only on `text` (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def rng_for(seed: int, image_id: str, purpose: str) -> np.random.Generator:
    """A generator whose stream is a pure function of (seed, image_id, purpose)."""
    return np.random.default_rng([seed, stable_int(image_id), stable_int(purpose)])
