#!/usr/bin/env python
"""How often bench marks an effect `*` when there is none (the false-mark rate), how often when
there is one of known size (power), and whether its intervals hold the value they estimate
(coverage), for every effect bench marks, on nulls as users meet them.

Run from the project root:

    python benchmarks/calibration.py --quick          # every family, few replicates: a smoke test
    python benchmarks/calibration.py                  # the table (400 replicates a null; see --help for the cost)
    python benchmarks/calibration.py --real-home H --real-root DIR   # also the real-embedding nulls (see --help)

Every number comes from bench's public array API (bench.measures): the same functions the tasks
call for their intervals, tests and marks. Every replicate draws its train and val (or test)
images anew. A null row is over the goal when its false-mark rate exceeds the nominal 5 % by more
than two Monte-Carlo errors; a null whose statistic cannot move in a replicate "cannot fail" and is
listed apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench import measures  # noqa: E402
from bench.audit import association  # noqa: E402
from bench.audit import properties as audit_properties  # noqa: E402
from bench.bootstrap import Resampling  # noqa: E402
from bench.seeding import stable_int  # noqa: E402

NOMINAL = 5.0  # % of null replicates marked, at most (plus two Monte-Carlo errors)
AUDIT_PHOTOS: Path | None = None  # a folder of camera photos for the audit's real nulls (--audit-photos)


@dataclass(frozen=True)
class Sizes:
    replicates: int = 400  # per null: Monte-Carlo error 1.1 points on a 5 % rate
    permutations: int = 19  # on nulls: p ≤ 0.05 exactly when no permutation reaches the value, so the level is exact
    resamples: int = 100  # intervals: enough for the width and coverage columns
    board: int = 30  # null encoders on one board
    planted_replicates: int = 200
    planted_permutations: int = 99  # power at the p-values a board of a few encoders needs


QUICK = Sizes(replicates=40, permutations=19, resamples=50, board=10, planted_replicates=20, planted_permutations=39)


@dataclass(frozen=True)
class Replicate:
    """One replicate of one effect: its value, interval and p-value, and whether the statistic moved."""

    value: float
    interval: tuple[float, float] | None
    p: float | None
    moved: bool = True


@dataclass(frozen=True)
class Row:
    effect: str
    null: str  # what is exchangeable, and how the images are drawn
    unit: str
    planted: float | None  # None: a null; else the value the interval should hold (power and coverage)
    found: tuple[Replicate, ...]

    @property
    def marked(self) -> np.ndarray:
        return np.array([r.p is not None and r.p <= measures.ALPHA for r in self.found])

    def rate(self) -> tuple[float, float]:
        p = float(self.marked.mean())
        return 100.0 * p, 100.0 * float(np.sqrt(p * (1 - p) / len(self.found)))

    @property
    def cannot_fail(self) -> bool:
        """Every replicate's statistic stood still (no permutation or resample could move it)."""
        return not any(r.moved for r in self.found)

    def width_ratio(self) -> float:
        """Median interval width over 3.92 × the spread of the value across replicates (1: the
        intervals are as wide as the replicates' spread says they should be)."""
        widths = [r.interval[1] - r.interval[0] for r in self.found if r.interval is not None]
        spread = float(np.std([r.value for r in self.found], ddof=1))
        return float(np.median(widths) / (3.92 * spread)) if widths and spread > 0 else float("nan")

    def coverage(self) -> float:
        target = self.planted if self.planted is not None else 0.0
        held = [r.interval[0] <= target <= r.interval[1] for r in self.found if r.interval is not None]
        return 100.0 * float(np.mean(held)) if held else float("nan")


def rng(seed: int, purpose: str, replicate: int) -> np.random.Generator:
    return np.random.default_rng([seed, stable_int(purpose), replicate])


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Worlds: images under versions, drawn anew in every replicate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Versions:
    """Images of `classes` classes under `versions` processing versions: a version is the image plus
    i.i.d. noise (so the versions are exchangeable) plus `trace` along the version's own direction,
    fixed like an encoder's (0: no trace). Photos are the units: `per_photo` crops each, a photo in
    one split; with `photo_classes` every class is one photo whose crops fill train and val (as the
    demo and patches datasets)."""

    classes: int = 10
    versions: int = 3
    dims: int = 32
    separation: float = 1.2
    photo_spread: float = 0.6
    crop_spread: float = 0.3
    wobble: float = 0.35
    trace: float = 0.0
    per_photo: int = 1
    tiny: bool = False  # classes of 1–4 val images
    photo_classes: bool = False

    def _versions(self, generator: np.random.Generator, images: np.ndarray) -> list[np.ndarray]:
        directions = unit_rows(np.random.default_rng([self.versions, self.dims, 7]).normal(size=(self.versions, self.dims)))
        return [(images + self.wobble * generator.normal(size=images.shape) + self.trace * directions[v]).astype(np.float32)
                for v in range(self.versions)]

    def _crops(self, generator: np.random.Generator, photos: np.ndarray, crops: int) -> np.ndarray:
        return np.repeat(photos, crops, axis=0) + self.crop_spread * generator.normal(size=(len(photos) * crops, self.dims))

    def draw(self, generator: np.random.Generator, train_photos: int, val_photos: int):
        """((versions, labels, units) of train, of val), drawn anew."""
        centres = np.eye(self.classes, self.dims) * self.separation
        if self.photo_classes:  # one photo per class, its crops in both splits
            photos = centres + self.photo_spread * generator.normal(size=(self.classes, self.dims))
            return tuple((self._versions(generator, self._crops(generator, photos, crops)), np.repeat(np.arange(self.classes), crops),
                          np.repeat([f"p{c}" for c in range(self.classes)], crops)) for crops in (train_photos, val_photos))
        out = []
        for prefix, counts in (("t", np.full(self.classes, train_photos)),
                               ("v", generator.integers(1, 5, self.classes) if self.tiny else np.full(self.classes, val_photos))):
            labels = np.repeat(np.arange(self.classes), counts)
            photos = centres[labels] + self.photo_spread * generator.normal(size=(len(labels), self.dims))
            units = np.repeat([f"{prefix}{i}" for i in range(len(labels))], self.per_photo)
            out.append((self._versions(generator, self._crops(generator, photos, self.per_photo)), np.repeat(labels, self.per_photo), units))
        return out[0], out[1]


def knn_family(world: Versions, sizes: Sizes, seed: int, replicates: int, k: int = 5, train_photos: int = 12,
               val_photos: int = 6) -> list[Replicate]:
    out = []
    for r in range(replicates):
        generator = rng(seed, f"knn-{world}", r)
        (train, train_labels, train_units), (val, val_labels, val_units) = world.draw(generator, train_photos, val_photos)
        found = measures.knn_gap(train, train_labels, val, val_labels, k, train_units=train_units, val_units=val_units,
                                 permutations=sizes.permutations, resampling=Resampling(sizes.resamples, seed=r), seed=r)
        out.append(Replicate(found.value, found.interval, found.test.p))
    return out


def similarity_family(world: Versions, sizes: Sizes, seed: int, replicates: int, name: str) -> list[Replicate]:
    out = []
    for r in range(replicates):
        generator = rng(seed, f"similarity-{world}", r)
        (train, train_labels, train_units), (val, val_labels, val_units) = world.draw(generator, 8 if world.photo_classes else 12, 6)
        found = measures.similarity_shifts(train[:2], train_labels, val[:2], val_labels, train_units=train_units, val_units=val_units,
                                           permutations=sizes.permutations, resampling=Resampling(sizes.resamples, seed=r), seed=r)[name]
        out.append(Replicate(found.value, found.interval, found.test.p))
    return out


def paircams_family(sizes: Sizes, seed: int, replicates: int, trace: float = 0.0, subjects_per_photo: int = 1,
                    photos: int = 60) -> list[Replicate]:
    """Subjects (grouped by photo: the unit) shot twice; the shots are exchangeable unless the
    camera class leaves `trace` along its own direction."""
    out = []
    for r in range(replicates):
        generator = rng(seed, f"paircams-{trace}-{subjects_per_photo}", r)
        photo = unit_rows(generator.normal(size=(photos, 24)))
        content = np.repeat(photo, subjects_per_photo, axis=0) + 0.5 * generator.normal(size=(photos * subjects_per_photo, 24)) / 5
        cameras = unit_rows(np.random.default_rng([2, 24, 7]).normal(size=(2, 24)))  # fixed, like an encoder's
        shots = [content + 0.9 * generator.normal(size=content.shape) / 5 + trace * cameras[c] for c in (0, 1)]
        units = np.repeat(np.arange(photos), subjects_per_photo)
        found = measures.paircams_gap(shots[0], shots[1], units=units, permutations=sizes.permutations,
                                      resampling=Resampling(sizes.resamples, seed=r), seed=r)
        out.append(Replicate(found.value, found.interval, found.test.p))
    return out


def processing_probe_family(sizes: Sizes, seed: int, replicates: int, signal: float = 0.0, versions: int = 4,
                            images: int = 60, per_photo: int = 1) -> list[Replicate]:
    """A fixed probe's predictions on every val image under every version: each image has its own
    leaning (a probe keys on the image, not on the processing), and with `signal` the version is
    named more often than the others; without it the versions are exchangeable."""
    out = []
    for r in range(replicates):
        generator = rng(seed, f"probe-processing-{signal}-{per_photo}", r)
        photos = images // per_photo
        leaning = np.repeat(generator.normal(size=(photos, versions)), per_photo, axis=0)  # the photo sways the probe
        logits = leaning[None] + generator.normal(size=(versions, images, versions)) * 0.7 + signal * np.eye(versions)[:, None, :]
        predictions = logits.argmax(axis=-1).reshape(1, -1)  # (1, versions · images), version-major
        units = np.repeat(np.arange(photos), per_photo)
        found = measures.processing_probe_accuracy(predictions, versions, units=units, permutations=sizes.permutations,
                                                   resampling=Resampling(sizes.resamples, seed=r), seed=r)
        out.append(Replicate(found.value, found.interval, found.test.p))
    return out


def label_probe_family(sizes: Sizes, seed: int, replicates: int, name: str, *, tiny: bool = True, clustered: bool = False,
                       constant: bool = False, quality: float = 0.0, classes: int = 11) -> list[Replicate]:
    """Test photos with labels (classes of 1–4 photos when `tiny`, or photos of 3–6 crops sharing
    their label when `clustered`) and a fixed probe's predictions: balanced and varying but
    independent of the labels (crops of one photo lean the same way), or constant (the largest
    class for all), or right with probability `quality` (else uniform: accuracy quality + (1 − quality) / classes)."""
    out = []
    for r in range(replicates):
        generator = rng(seed, f"label-{name}-{tiny}-{clustered}-{constant}-{quality}", r)
        counts = generator.integers(1, 5, classes) if tiny else np.full(classes, 8)
        photo_labels = np.repeat(np.arange(classes), counts)
        crops = generator.integers(3, 7, len(photo_labels)) if clustered else np.ones(len(photo_labels), dtype=np.int64)
        labels = np.repeat(photo_labels, crops)
        units = np.repeat(np.arange(len(photo_labels)), crops)
        if constant:
            predictions = np.full(len(labels), np.bincount(labels).argmax())
        else:
            photo_guess = generator.integers(0, classes, len(photo_labels))
            predictions = np.where(generator.random(len(labels)) < 0.7, photo_guess[units], generator.integers(0, classes, len(labels)))
            right = generator.random(len(labels)) < quality
            predictions = np.where(right, labels, generator.integers(0, classes, len(labels)) if quality else predictions)
        found = measures.label_probe_accuracy(predictions, labels, units=units, permutations=sizes.permutations,
                                              resampling=Resampling(sizes.resamples, seed=r), seed=r)[name]
        moved = not constant
        out.append(Replicate(found.value, found.interval, found.test.p, moved))
    return out


BOARD_PERMUTATIONS = 1999  # a board of m tests needs p-values down to 0.05 / m: 1 / 2,000 reaches m = 100


def board_family(sizes: Sizes, seed: int, replicates: int, planted: int = 0) -> tuple[list[bool], list[float]]:
    """Boards of `sizes.board` encoders, each with a probe's accuracy on fresh test photos: `planted`
    of them right 30 % of the time, the rest ignoring the labels. Per board, whether any null
    encoder is marked after Benjamini–Hochberg, and the false-discovery proportion (false marks
    over all marks; 0 without marks)."""
    any_false, proportions = [], []
    labels = np.repeat(np.arange(6), 10)
    for r in range(replicates):
        p_values = []
        for encoder in range(sizes.board):
            generator = rng(seed, "board", r * 1000 + encoder)
            predictions = generator.integers(0, 6, len(labels))
            if encoder < planted:
                predictions = np.where(generator.random(len(labels)) < 0.3, labels, predictions)
            p_values.append(measures.label_probe_accuracy(predictions, labels, permutations=BOARD_PERMUTATIONS,
                                                          resampling=Resampling(0), seed=r * 1000 + encoder)["probe_acc1"].test.p)
        marks = [q is not None and q <= measures.ALPHA for q in measures.adjust(p_values, "bh")]
        false = sum(marks[planted:])
        any_false.append(false > 0)
        proportions.append(false / sum(marks) if any(marks) else 0.0)
    return any_false, proportions


# ---------------------------------------------------------------------------------------------
# Real embeddings: the issue users meet, on stored vectors
# ---------------------------------------------------------------------------------------------


def real_vectors(home: Path, root: Path, encoder: str, versions: tuple[str, str]):
    """Every image of an imagefolder dataset under two processings, from a bench home."""
    from bench import data
    from bench.data import DatasetOptions
    from bench.store import Store
    from bench.workspace import Workspace

    resolved = data.resolve("imagefolder", DatasetOptions(root=root))
    store = Store(Workspace.at(home).embeddings_uri)
    splits = [store.split_vectors(resolved.key, encoder, split, versions) for split in ("train", "val")]
    vectors = [np.concatenate([split.vectors[v] for split in splits]) for v in versions]
    labels = np.concatenate([split.labels for split in splits])
    return vectors, labels


def real_family(vectors: list[np.ndarray], labels: np.ndarray, sizes: Sizes, seed: int, replicates: int, effect: str,
                train: int = 200, val: int = 100) -> list[Replicate]:
    """Real embeddings under two processings; every replicate draws train and val anew and flips a
    fair coin per image for which stored version is called the first processing: the versions are
    then exchangeable, so no processing effect exists in that population."""
    out = []
    for r in range(replicates):
        generator = rng(seed, f"real-{effect}", r)
        chosen = generator.permutation(len(labels))[: train + val]
        flip = generator.integers(0, 2, len(chosen))
        first = np.where(flip[:, None] == 1, vectors[1][chosen], vectors[0][chosen])
        second = np.where(flip[:, None] == 1, vectors[0][chosen], vectors[1][chosen])
        parts = [(v[:train], v[train:]) for v in (first, second)]
        train_vectors, val_vectors = [p[0] for p in parts], [p[1] for p in parts]
        train_labels, val_labels = labels[chosen[:train]], labels[chosen[train:]]
        if effect == "knn":
            found = measures.knn_gap(train_vectors, train_labels, val_vectors, val_labels, 10, permutations=sizes.permutations,
                                     resampling=Resampling(sizes.resamples, seed=r), seed=r)
        else:
            found = measures.similarity_shifts(train_vectors, train_labels, val_vectors, val_labels, permutations=sizes.permutations,
                                               resampling=Resampling(sizes.resamples, seed=r), seed=r)[effect]
        out.append(Replicate(found.value, found.interval, found.test.p))
    return out


# ---------------------------------------------------------------------------------------------
# Audit: Cramér's V between the class labels and a file property (bench.audit.association)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileWorld:
    """Files of fixed classes (`files_per_class`) carrying one property: each file's value drawn from
    `values` (shares, the same for every class: no association) or, with `planted` > 0, from the
    class's own mix (1 − s) · values + s · [value = class mod levels], s set so that the population's
    Cramér's V is `planted`. A file holds `crops` records (a range: crops of one photo) of its class."""

    files_per_class: tuple[int, ...]
    values: tuple[float, ...]
    planted: float = 0.0
    crops: tuple[int, int] = (1, 1)

    def conditional(self, strength: float) -> np.ndarray:
        """(classes, levels): each class's value shares at mix strength s."""
        base = np.asarray(self.values) / np.sum(self.values)
        own = np.eye(len(base))[np.arange(len(self.files_per_class)) % len(base)]
        return (1.0 - strength) * base[None] + strength * own

    def population_v(self, strength: float) -> float:
        """Cramér's V of the population: records' classes in the proportions of their files' crops."""
        weights = np.asarray(self.files_per_class, dtype=float) / np.sum(self.files_per_class)
        joint = weights[:, None] * self.conditional(strength)
        shares = joint.sum(axis=0)
        kept = shares > 0
        phi2 = float((joint[:, kept] ** 2 / (weights[:, None] * shares[None, kept])).sum() - 1.0)
        return float(np.sqrt(max(phi2, 0.0) / (min(len(weights), int(kept.sum())) - 1)))

    def strength(self) -> float:
        """The mix strength whose population V is `planted` (bisection: V grows with s)."""
        low, high = 0.0, 1.0
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if self.population_v(middle) < self.planted else (low, middle)
        return (low + high) / 2

    def draw(self, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(record labels, record files, file values), drawn anew."""
        file_labels = np.repeat(np.arange(len(self.files_per_class)), self.files_per_class)
        mix = self.conditional(self.strength() if self.planted else 0.0)[file_labels]
        values = np.minimum((generator.random(len(file_labels))[:, None] > np.cumsum(mix, axis=1)).sum(axis=1), mix.shape[1] - 1)
        crops = generator.integers(self.crops[0], self.crops[1] + 1, len(file_labels))
        return np.repeat(file_labels, crops), np.repeat(np.arange(len(file_labels)), crops), values


def audit_replicate(labels: np.ndarray, units: np.ndarray, values: np.ndarray, sizes: Sizes, seed: int) -> Replicate:
    """The audit's V, interval and p for one property, as bench.audit.measure computes them: codes
    compacted, a file's stratum its first class, a constant property (one value) not measured."""
    _, label_codes = np.unique(labels, return_inverse=True)
    _, value_codes = np.unique(values, return_inverse=True)
    classes, levels = int(label_codes.max()) + 1, int(value_codes.max()) + 1
    coded = association.per_file(association.Coded(label_codes.astype(np.int64), units.astype(np.int64), value_codes.astype(np.int64),
                                                   classes, levels))
    if levels < 2 or classes < 2:
        return Replicate(0.0, None, None, moved=False)
    strata = np.full(len(values), classes, dtype=np.int64)
    np.minimum.at(strata, coded.units, coded.labels)
    v = float(association.cramers_v(coded.table()))
    interval = association.bootstrap_interval(coded, strata, sizes.resamples, np.random.default_rng([seed, 1]))
    p = association.permutation_p(coded, v, sizes.permutations, np.random.default_rng([seed, 2]))
    return Replicate(v, interval, p)


def audit_family(world: FileWorld, sizes: Sizes, seed: int, replicates: int) -> list[Replicate]:
    return [audit_replicate(*world.draw(rng(seed, f"audit-{world}", r)), sizes, r) for r in range(replicates)]


def real_audit_family(labels: np.ndarray, values: np.ndarray, sizes: Sizes, seed: int, replicates: int, name: str) -> list[Replicate]:
    """Real files' values of one property against their real labels shuffled over the files: the
    label counts and the property's values are as found, their association is gone."""
    units = np.arange(len(labels))
    return [audit_replicate(rng(seed, f"real-audit-{name}", r).permutation(labels), units, values, sizes, r) for r in range(replicates)]


@functools.lru_cache(maxsize=None)
def real_properties(folder: Path) -> dict[str, np.ndarray]:
    """Every audited property of the image files under `folder`, read as the audit reads them
    (unreadable files left out), one array of values per property."""
    paths = sorted(str(path) for path in folder.rglob("*") if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"))
    reading = audit_properties.read(paths)
    return {prop.name: np.array([reading.values[path][prop.name] for path in reading.values]) for prop in audit_properties.PROPERTIES}


ZIPF_60 = tuple(1.0 / np.arange(1, 61))  # 60 values, a few common and many rare (as Exif models)
UNBALANCED = (80, 50, 30, 20, 12, 8, 6, 4, 3, 2, 2, 2)  # 12 classes of 2 to 80 files


def audit_families(sizes: Sizes, seed: int, photos: Path | None) -> list[tuple[str, str, str, float | None, Callable[[int], list[Replicate]]]]:
    """(effect, null, unit, planted, run) for the audit: nulls with labels independent of the files'
    values, shaped as datasets are; planted associations of known population V; and, given a
    folder of photos, its real properties against its real Exif makes shuffled over files."""
    found = [
        ("audit V", "100 classes of 3 files, 5 values", "file", None,
         FileWorld((3,) * 100, (0.4, 0.25, 0.15, 0.12, 0.08))),
        ("audit V", "12 unbalanced classes (2–80 files), 4 values", "file", None, FileWorld(UNBALANCED, (0.4, 0.3, 0.2, 0.1))),
        ("audit V", "60 values, most rare (Zipf), 10 classes of 20 files", "file", None, FileWorld((20,) * 10, ZIPF_60)),
        ("audit V", "one value on 97 % of files, 10 classes of 30", "file", None, FileWorld((30,) * 10, (0.97, 0.03))),
        ("audit V", "crops: 8 classes of 5 files, 3–12 crops a file", "file", None,
         FileWorld((5,) * 8, (0.5, 0.3, 0.2), crops=(3, 12))),
        ("audit V", "planted V 0.1, 10 classes of 40 files, 4 values", "file", 0.1,
         FileWorld((40,) * 10, (0.4, 0.3, 0.2, 0.1), planted=0.1)),
        ("audit V", "planted V 0.3, 10 classes of 40 files, 4 values", "file", 0.3,
         FileWorld((40,) * 10, (0.4, 0.3, 0.2, 0.1), planted=0.3)),
        ("audit V", "planted V 0.3, 12 unbalanced classes", "file", 0.3, FileWorld(UNBALANCED, (0.4, 0.3, 0.2, 0.1), planted=0.3)),
        ("audit V", "planted V 0.6, 5 classes of 20 files, 3 values", "file", 0.6, FileWorld((20,) * 5, (0.5, 0.3, 0.2), planted=0.6)),
        ("audit V", "planted V 0.3, 8 classes of 10 files, 3–12 crops a file", "file", 0.3,
         FileWorld((10,) * 8, (0.5, 0.3, 0.2), planted=0.3, crops=(3, 12))),
    ]
    rows = [(effect, null, unit, planted, lambda n, world=world: audit_family(world, sizes, seed, n))
            for effect, null, unit, planted, world in found]
    if photos is not None:
        read = real_properties(photos)
        for name in ("jpeg_quality", "subsampling", "model", "iso", "pixel_size"):
            rows.append(("audit V", f"real: {name} of {len(read['make'])} photos in {photos.name}, their makes shuffled", "file", None,
                         lambda n, name=name: real_audit_family(read["make"], read[name], sizes, seed, n, name)))
    return rows


# ---------------------------------------------------------------------------------------------
# Mitigate: the trace left after a method fitted on train (bench.mitigation), on nulls
# ---------------------------------------------------------------------------------------------

def _split(vectors: list[np.ndarray], labels: np.ndarray, prefix: str):
    from bench.vectors import SplitVectors

    return SplitVectors(np.array([f"{prefix}{i:05d}" for i in range(len(labels))]), labels.astype(np.int64),
                        {f"v{v}": matrix for v, matrix in enumerate(vectors)})


def _mitigated(drawn: tuple[tuple, tuple], method: str, replicate: int) -> tuple[list[str], SplitVectors, SplitVectors]:
    """One replicate's versions, fitted on by `method` in train (the task's settings; the
    adversarial fit seeded by the replicate) and applied to train and val: (version names, train
    after, val after)."""
    from bench import mitigation

    (train, train_labels, _), (val, val_labels, _) = drawn
    train_split, val_split = _split(train, train_labels, "t"), _split(val, val_labels, "v")
    names = list(train_split.vectors)
    fitted = mitigation.fit(method, train_split, names, adversarial=mitigation.AdversarialSettings(seed=replicate))
    return names, fitted.apply(train_split), fitted.apply(val_split)


def mitigate_family(world: Versions, sizes: Sizes, seed: int, replicates: int, method: str, k: int = 5, train_photos: int = 12,
                    val_photos: int = 6) -> list[Replicate]:
    """The knn gap's test and interval on the vectors a method fitted on the train split hands back:
    fitting reads the version labels, so whether the versions stay exchangeable after it is what
    this measures."""
    out = []
    for r in range(replicates):
        drawn = world.draw(rng(seed, f"mitigate-{method}-{world}", r), train_photos, val_photos)
        (_, train_labels, train_units), (_, val_labels, val_units) = drawn
        names, after_train, after_val = _mitigated(drawn, method, r)
        found = measures.knn_gap([after_train.vectors[name] for name in names], train_labels, [after_val.vectors[name] for name in names],
                                 val_labels, k, train_units=train_units, val_units=val_units, permutations=sizes.permutations,
                                 resampling=Resampling(sizes.resamples, seed=r), seed=r)
        out.append(Replicate(found.value, found.interval, found.test.p))
    return out


def mitigate_probe_family(world: Versions, sizes: Sizes, seed: int, replicates: int, method: str, train_photos: int = 12,
                          val_photos: int = 6) -> list[Replicate]:
    """The processing probe's test after the method: probe-processing's protocol, with a small search."""
    from bench.tasks.linear_probe import ProbeSettings
    from bench.tasks.probe_processing import processing_probe

    out = []
    for r in range(replicates):
        drawn = world.draw(rng(seed, f"mitigate-probe-{method}-{world}", r), train_photos, val_photos)
        val_units = drawn[1][2]
        names, after_train, after_val = _mitigated(drawn, method, r)
        probed = processing_probe(after_train, after_val, names, seeds=(0,),
                                  settings=ProbeSettings(trials=2, epochs=20), search_seed=r)
        found = measures.processing_probe_accuracy(probed.predictions, len(names), units=val_units, permutations=sizes.permutations,
                                                   resampling=Resampling(sizes.resamples, seed=r), seed=r)
        out.append(Replicate(found.value, found.interval, found.test.p))
    return out


def mitigate_families(sizes: Sizes, seed: int) -> list[tuple[str, str, str, float | None, Callable[[int], list[Replicate]]]]:
    """(effect, null, unit, planted, run) for mitigate: exchangeable versions, a method fitted on
    their labels in train, the trace left tested on train and val."""
    plain = Versions()
    rows = [(f"mitigate {method}: gap after", "exchangeable versions, fitted on train", "image", None,
             lambda n, method=method: mitigate_family(plain, sizes, seed, n, method)) for method in ("projection", "normalise", "adversarial")]
    rows += [(f"mitigate {method}: probe after", "exchangeable versions, fitted on train", "image", None,
              lambda n, method=method: mitigate_probe_family(plain, sizes, seed, n, method)) for method in ("projection", "normalise", "adversarial")]
    return rows


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def families(sizes: Sizes, seed: int, only: set[str] | None) -> list[tuple[str, str, str, float | None, Callable[[int], list[Replicate]]]]:
    """(effect, null, unit, planted, run(replicates)) for every family; planted None: a null."""
    plain = Versions()
    crops = Versions(per_photo=4)
    tiny = Versions(tiny=True)
    patches = Versions(classes=20, photo_classes=True)  # as patches: a photo a class, 8 train and 6 val crops of it
    found = [
        ("knn gap", "exchangeable versions, train and val drawn", "image", None, lambda n: knn_family(plain, sizes, seed, n)),
        ("knn gap", "exchangeable versions, 4 crops a photo", "source photo", None, lambda n: knn_family(crops, sizes, seed, n)),
        ("knn gap", "exchangeable versions, a photo a class, crops in train and val", "source photo", None,
         lambda n: knn_family(patches, sizes, seed, n, train_photos=8, val_photos=6)),
        ("knn gap", "exchangeable versions, classes of 1–4 val images", "image", None, lambda n: knn_family(tiny, sizes, seed, n)),
        ("similarity shift sem=", "exchangeable versions, a photo a class, crops in train and val", "source photo", None,
         lambda n: similarity_family(patches, sizes, seed, n, "shift_semantic_same")),
        ("similarity shift sem≠", "exchangeable versions, 4 crops a photo", "source photo", None,
         lambda n: similarity_family(crops, sizes, seed, n, "shift_semantic_diff")),
        ("paircams gap", "exchangeable shots, 1 subject a photo", "subject", None, lambda n: paircams_family(sizes, seed, n)),
        ("paircams gap", "exchangeable shots, 3 subjects a photo", "source photo", None,
         lambda n: paircams_family(sizes, seed, n, subjects_per_photo=3, photos=25)),
        ("processing probe acc", "exchangeable versions, probe leaning by image", "image", None,
         lambda n: processing_probe_family(sizes, seed, n)),
        ("processing probe acc", "exchangeable versions, 3 crops a photo", "source photo", None,
         lambda n: processing_probe_family(sizes, seed, n, per_photo=3)),
        ("acquisition probe acc", "labels ⟂ varying predictions, classes of 1–4", "image", None,
         lambda n: label_probe_family(sizes, seed, n, "probe_acc1")),
        ("acquisition mean class acc", "labels ⟂ varying predictions, classes of 1–4", "image", None,
         lambda n: label_probe_family(sizes, seed, n, "probe_mean_class_acc")),
        ("acquisition mean class acc", "labels ⟂ predictions, photos of 3–6 crops", "source photo", None,
         lambda n: label_probe_family(sizes, seed, n, "probe_mean_class_acc", tiny=False, clustered=True)),
        ("acquisition probe acc", "a constant probe (the largest class)", "image", None,
         lambda n: label_probe_family(sizes, seed, n, "probe_acc1", constant=True)),
        # planted effects: power, and coverage of the value the interval estimates
        ("knn gap", "planted trace 0.6", "image", "mean", lambda n: knn_family(Versions(trace=0.6), sizes, seed, n)),
        ("similarity shift sem≠", "planted trace 0.35, 4 crops a photo", "source photo", "mean",
         lambda n: similarity_family(Versions(trace=0.35, per_photo=4), sizes, seed, n, "shift_semantic_diff")),
        ("paircams gap", "planted camera trace 0.3", "subject", "mean", lambda n: paircams_family(sizes, seed, n, trace=0.3)),
        ("processing probe acc", "planted version signal 0.5", "image", "mean",
         lambda n: processing_probe_family(sizes, seed, n, signal=0.5)),
        ("acquisition probe acc", "probe right 30 % of the time (acc 36.4 %)", "image", 100 * (0.3 + 0.7 / 11),
         lambda n: label_probe_family(sizes, seed, n, "probe_acc1", tiny=False, quality=0.3)),
        *audit_families(sizes, seed, AUDIT_PHOTOS),
        *mitigate_families(sizes, seed),
    ]
    return [row for row in found if only is None or any(word in row[0] for word in only)]


def _run_family(job: tuple[Sizes, int, set[str] | None, int]) -> Row:
    """One family (by its place in `families`), in a worker process."""
    sizes, seed, only, index = job
    planted_sizes = dataclasses.replace(sizes, permutations=sizes.planted_permutations)
    effect, null, unit, planted, _ = families(sizes, seed, only)[index]
    run = families(planted_sizes if planted is not None else sizes, seed, only)[index][4]
    began = time.perf_counter()
    found = tuple(run(sizes.planted_replicates if planted is not None else sizes.replicates))
    target = float(np.mean([r.value for r in found])) if planted == "mean" else planted
    print(f"  {effect}: {null} ({time.perf_counter() - began:.0f} s)", file=sys.stderr, flush=True)
    return Row(effect, null, unit, target, found)


def run_rows(sizes: Sizes, seed: int, only: set[str] | None, workers: int) -> list[Row]:
    """Every family's replicates, families spread over `workers` processes."""
    jobs = [(sizes, seed, only, index) for index in range(len(families(sizes, seed, only)))]
    if workers <= 1:
        return [_run_family(job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(_run_family, jobs, chunksize=1)


def number(value: float, decimals: int = 1) -> str:
    return "—" if value != value else f"{value:.{decimals}f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)] if rows else [len(h) for h in headers]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def report(rows: list[Row], board: dict[int, tuple[list[bool], list[float]]] | None, sizes: Sizes) -> str:
    nulls = [row for row in rows if row.planted is None and not row.cannot_fail]
    stuck = [row for row in rows if row.planted is None and row.cannot_fail]
    planted = [row for row in rows if row.planted is not None]
    out = [f"false marks on nulls ({sizes.replicates} replicates each, {sizes.permutations} permutations, {sizes.resamples} resamples; "
           f"goal: ≤ {NOMINAL:g} % + 2 Monte-Carlo errors)", ""]
    body = []
    for row in nulls:
        rate, error = row.rate()
        verdict = "over the goal" if rate > NOMINAL + 2 * error else "ok"
        body.append([row.effect, row.null, row.unit, f"{number(rate)} ± {number(error)}", number(row.width_ratio(), 2), verdict])
    out.append(table(["effect", "null", "unit", "marked %", "width / 3.92 sd", "verdict"], body))
    for effects, found in (board or {}).items():
        marked, proportions = found
        share = 100 * float(np.mean(marked))
        error = 100 * float(np.sqrt(np.mean(marked) * (1 - np.mean(marked)) / len(marked)))
        fdr = 100 * float(np.mean(proportions))
        fdr_error = 100 * float(np.std(proportions, ddof=1) / np.sqrt(len(proportions)))
        verdict = "over the goal" if fdr > NOMINAL + 2 * fdr_error else "ok"
        out += ["", f"boards of {sizes.board} encoders ({effects} with a probe right 30 % of the time, the rest null), one test each, "
                f"{BOARD_PERMUTATIONS} permutations, Benjamini–Hochberg, {len(marked)} boards: boards with a false mark "
                f"{number(share)} ± {number(error)} %, false-discovery rate {number(fdr)} ± {number(fdr_error)} % ({verdict})"]
    if stuck:
        out += ["", "cannot fail (the statistic cannot move, so these do not count):"]
        out += [f"- {row.effect}: {row.null} (marked {number(row.rate()[0])} %)" for row in stuck]
    out += ["", f"planted effects ({sizes.planted_replicates} replicates, {sizes.planted_permutations} permutations): power (marked %) and coverage (the interval holds the planted value, or the mean over replicates "
            "where the value depends on the sample size)", ""]
    body = []
    for row in planted:
        rate, error = row.rate()
        body.append([row.effect, row.null, row.unit, f"{number(rate)} ± {number(error)}", number(row.coverage()), number(row.width_ratio(), 2)])
    out.append(table(["effect", "planted", "unit", "marked %", "coverage %", "width / 3.92 sd"], body))
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Cost: the full table takes about 20 minutes on 2 CPU cores; --quick about 2. The real nulls need a bench home "
               "holding an imagefolder dataset embedded under jpeg75_420 and jpeg95_444 (python -m bench --home H extract "
               "--dataset imagefolder --root DIR --encoders effnet/lite0.in1k --processings jpeg75_420,jpeg95_444).")
    parser.add_argument("--quick", action="store_true", help="few replicates, a smoke test")
    parser.add_argument("--replicates", type=int, help="replicates per family (default: 400)")
    parser.add_argument("--only", help="comma-separated words: the effects to run (e.g. knn,paircams; real: only the real nulls; board)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes the families are spread over (default: 2)")
    parser.add_argument("--no-board", action="store_true", help="leave out the boards of many null encoders")
    parser.add_argument("--real-home", type=Path, help="a bench home with real embeddings (see the epilog)")
    parser.add_argument("--real-root", type=Path, help="the imagefolder those embeddings come from")
    parser.add_argument("--real-encoder", default="effnet/lite0.in1k")
    parser.add_argument("--audit-photos", type=Path, help="a folder of camera photos: the audit's real properties against "
                        "their Exif makes shuffled over the files")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    sizes = QUICK if arguments.quick else Sizes()
    if arguments.replicates:
        sizes = dataclasses.replace(sizes, replicates=arguments.replicates)
    only = set(arguments.only.split(",")) if arguments.only else None
    global AUDIT_PHOTOS
    AUDIT_PHOTOS = arguments.audit_photos
    began = time.perf_counter()
    rows = run_rows(sizes, arguments.seed, only, arguments.workers)
    if arguments.real_home is not None and arguments.real_root is not None:
        vectors, labels = real_vectors(arguments.real_home, arguments.real_root, arguments.real_encoder, ("jpeg75_420", "jpeg95_444"))
        where = f"{arguments.real_encoder} on {arguments.real_root.name} ({len(labels)} images)"
        for effect, name in (("knn", "knn gap"), ("shift_semantic_same", "similarity shift sem="), ("shift_semantic_diff", "similarity shift sem≠")):
            if only is None or "real" in only or any(word in name for word in only):
                found = tuple(real_family(vectors, labels, sizes, arguments.seed, sizes.replicates, effect))
                rows.append(Row(name, f"real: {where}, JPEG versions coin-flipped, train 200 and val 100 drawn", "image", None, found))
                print(f"  {name}: real ({time.perf_counter() - began:.0f} s so far)", file=sys.stderr, flush=True)
    board = None if arguments.no_board or (only is not None and "board" not in only) else {
        planted: board_family(sizes, arguments.seed, sizes.replicates, planted) for planted in (0, sizes.board // 3)}
    print(report(rows, board, sizes))
    print(f"\n{time.perf_counter() - began:.0f} s", file=sys.stderr)
    over = [row for row in rows if row.planted is None and not row.cannot_fail and row.rate()[0] > NOMINAL + 2 * row.rate()[1]]
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
