"""Randomness keyed by (seed, image_id, purpose), independent of worker order."""

from __future__ import annotations

import hashlib

import numpy as np


def _hasher(text: str) -> "hashlib.blake2b":
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8)


def _integer(hasher: "hashlib.blake2b") -> int:
    return int.from_bytes(hasher.digest(), "little")


def stable_int(text: str) -> int:
    """A 64-bit integer that depends only on `text` (Python's hash() is salted per process)."""
    return _integer(_hasher(text))


def rng_for(seed: int, image_id: str, purpose: str) -> np.random.Generator:
    """A generator whose stream is a pure function of (seed, image_id, purpose)."""
    return np.random.default_rng([seed, stable_int(image_id), stable_int(purpose)])


def uniform_choice(seed: int, image_ids: "np.ndarray | list[str]", choices: int, purpose: str) -> np.ndarray:
    """One i.i.d. uniform draw in [0, choices) per image id, keyed by (seed, image_id, purpose):
    stable_int(f"{seed}|{purpose}|{image_id}") % choices. The hash of the shared prefix is taken
    once and copied per id (the same digest as hashing the whole text, at half the cost)."""
    copy = _hasher(f"{seed}|{purpose}|").copy
    hashed = np.empty(len(image_ids), dtype=np.uint64)
    for position, image_id in enumerate(image_ids.tolist() if isinstance(image_ids, np.ndarray) else image_ids):
        hasher = copy()
        hasher.update(image_id.encode("utf-8"))
        hashed[position] = _integer(hasher)
    return (hashed % np.uint64(choices)).astype(np.int64)
