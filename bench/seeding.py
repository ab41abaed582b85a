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


def uniform_choice(seed: int, image_ids: "np.ndarray | list[str]", choices: int, purpose: str) -> np.ndarray:
    """One i.i.d. uniform draw in [0, choices) per image id, keyed by (seed, image_id, purpose)."""
    return np.fromiter(
        (stable_int(f"{seed}|{purpose}|{image_id}") % choices for image_id in image_ids),
        dtype=np.int64,
        count=len(image_ids),
    )
