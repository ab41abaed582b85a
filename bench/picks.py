"""What a gallery shows: the images a task picked behind its numbers (a query, its target, its
nearest images in each database), recorded in the result cell with what it takes to draw each one
again from its source file. Choices, not pixels and not words: the report draws and captions them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bench.data.record import ImageRecord
from bench.seeding import stable_int


@dataclass(frozen=True)
class Shot:
    """One image as the encoder saw it: where its pixels come from, the processing it was
    embedded under, what a reader needs to know about it, and where it ranked."""

    image_id: str
    path: str
    crop: tuple[int, int, int, int] | None
    capture: str | None  # the record's simulated capture op, if any
    orient: bool
    processing: str
    labels: tuple[str, ...]  # what the image is: class, or subject and camera class
    rank: int | None = None  # 1 = nearest; None for a query or a target shown on its own
    score: float | None = None  # cosine similarity to the query
    target: bool = False  # what the query should find: its target, or a neighbour of its class

    @classmethod
    def of(cls, record: ImageRecord, processing: str, labels: Sequence[str], **placed: Any) -> Shot:
        return cls(record.image_id, record.path, record.crop, record.capture, record.orient, processing, tuple(labels), **placed)

    def record(self) -> ImageRecord:
        """The record to decode, as the dataset listed it (split and label do not change pixels)."""
        return ImageRecord(self.image_id, "", -1, "", self.path, self.crop, capture=self.capture, orient=self.orient)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Shot:
        crop = value.get("crop")
        return cls(**{**value, "crop": tuple(crop) if crop is not None else None, "labels": tuple(value.get("labels", ()))})


@dataclass(frozen=True)
class Strip:
    """A query's nearest images in one database, best first, and how the query fared there."""

    name: str  # which database: e.g. "same", "pos-same"
    hit: bool
    shots: tuple[Shot, ...]
    fact: str = ""  # what decided the outcome: the voted class, or the target's rank

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Strip:
        return cls(**{**value, "shots": tuple(Shot.from_json(shot) for shot in value["shots"])})


@dataclass(frozen=True)
class Entry:
    """One query: the image, its target if it has one, and a strip per database."""

    query: Shot
    target: Shot | None
    strips: tuple[Strip, ...]

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Entry:
        target = value.get("target")
        return cls(Shot.from_json(value["query"]), Shot.from_json(target) if target else None,
                   tuple(Strip.from_json(strip) for strip in value["strips"]))


@dataclass(frozen=True)
class Picks:
    """A cell's gallery: the queries shown, with the encoder's view (input size, resize kernel)
    that the pixels of each shot depend on."""

    size: int
    interpolation: str
    entries: tuple[Entry, ...]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Picks:
        """The picks stored in a cell; malformed ones raise ValueError."""
        try:
            return cls(int(value["size"]), str(value["interpolation"]), tuple(Entry.from_json(entry) for entry in value["entries"]))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"malformed gallery ({type(error).__name__}: {error})") from None


def pick(image_ids: Sequence[str], count: int, wanted: np.ndarray, seed: int, purpose: str) -> list[int]:
    """`count` positions in an order that depends only on (seed, purpose, image id); when none
    of them is `wanted` but some position is, the last is replaced by the first wanted one in
    that order, so a gallery shows a failure whenever there is one."""
    order = sorted(range(len(image_ids)), key=lambda position: (stable_int(f"{seed}|{purpose}|{image_ids[position]}"), image_ids[position]))
    chosen = order[:count]
    wanted = np.asarray(wanted, dtype=bool)
    if chosen and not wanted[chosen].any():
        first = next((position for position in order if wanted[position]), None)
        if first is not None:
            chosen[-1] = first
    return chosen

