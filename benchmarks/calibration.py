#!/usr/bin/env python
"""How often bench marks an effect `*` when there is none (the false-mark rate), and how often
when there is one of known size (power), for every effect that carries an interval.

Run from the project root:

    python benchmarks/calibration.py --quick            # planted nulls only, small: a smoke test
    python benchmarks/calibration.py                    # the full table (see --help for its cost)
    python benchmarks/calibration.py --only paircams --replicates 1000
    python benchmarks/calibration.py --home . --dataset demo   # real nulls from embeddings in ./embeddings

Every number comes from bench's own code: the task functions compute the per-unit outcomes,
their `resample` / `metrics` methods the 95 % paired bootstrap intervals (1,000 resamples,
seed 0, as `python -m bench run` prints them), and `bootstrap.excludes` the mark. See --help
for what each null is and how to read the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench import bootstrap, data, processing  # noqa: E402
from bench.arguments import positive_int  # noqa: E402
from bench.data import DatasetOptions  # noqa: E402
from bench.seeding import stable_int  # noqa: E402
from bench.store import Store, vector_matrix  # noqa: E402
from bench.tasks import erasure, knn_influence, mitigate, paircams, probes, similarity  # noqa: E402
from bench.tasks.linear_probe import ProbeSettings  # noqa: E402
from bench.tasks.probe_acquisition import acquisition_probe, class_mean_resampled  # noqa: E402
from bench.tasks.probe_processing import processing_probe  # noqa: E402
from bench.vectors import SplitVectors  # noqa: E402

GOAL = 5.0  # % of null replicates marked, at most (plus its Monte-Carlo error)
DEFAULT_MINUTES = 17  # measured on 2 busy CPU cores, embedding included
RESAMPLING = bootstrap.Resampling()  # what `python -m bench run` uses: 1,000 resamples, seed 0
TASKS = ("knn-influence", "paircams", "similarity", "probe-processing", "probe-acquisition", "mitigate")
REAL_ENCODER = "effnet/lite0.random"  # the random-weight control: no trained trace to speak of
PAIRS_DATASET = "paircams-sim"
ACQUISITION_CLASSES = (0.55, 0.15, 0.15, 0.15)  # one large class: the majority share is far above chance


@dataclass(frozen=True)
class Sizes:
    """How many replicates, and how large each planted replicate is."""

    replicates: int = 400  # null replicates per effect: Monte-Carlo error 1.1 points on a 5 % rate
    power_replicates: int = 200
    mitigate_replicates: int = 200  # two knn-influence runs and two probe searches over all replicates' images at once
    train: int = 400  # planted train images (the kNN database, the probes' training data), fixed in every replicate
    val: int = 80  # planted val images per replicate (the units of knn-influence, similarity, probe-processing, mitigate)
    subjects: int = 100  # planted PairCams subjects per replicate
    test: int = 150  # planted probe-acquisition test images per replicate
    k: int = 10
    seeds: int = 3  # probe label seeds (the paper: 10)
    trials: int = 3  # probe search trials (the paper: 30): the mark's calibration does not need an exhaustive search
    epochs: int = 100  # as the paper: on a few hundred images that is 100 steps of SGD

    @property
    def settings(self) -> ProbeSettings:
        return ProbeSettings(trials=self.trials, epochs=self.epochs)


QUICK = Sizes(replicates=20, power_replicates=10, mitigate_replicates=10, train=200, val=40, subjects=60, test=80, seeds=2,
              trials=2, epochs=20)


def rng(seed: int, purpose: str, *more: int) -> np.random.Generator:
    """A generator that is a pure function of (seed, purpose, replicate): a rerun, or a run with
    more replicates, draws the same data for the replicates they share."""
    return np.random.default_rng([seed, stable_int(purpose), *more])


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1."""
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# What one effect did over its replicates
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marks:
    """The interval bench printed for one effect in each replicate, and what its mark is judged against."""

    effect: str  # "task metric"
    against: str  # the null as bench names it: 0, chance, majority
    data: str  # where the replicates come from
    units: str  # what one replicate resamples, and how many
    intervals: np.ndarray  # (R, 2)
    points: np.ndarray  # (R,) the point estimate bench printed
    baselines: np.ndarray  # (R,) the value the mark is judged against
    planted: str = ""  # power: the planted effect; "" for a null
    side: int = 1  # power: the side of the baseline the planted effect lies on

    @property
    def replicates(self) -> int:
        return len(self.points)

    @property
    def one_sided(self) -> bool:
        """Probe accuracies are marked only above their reference (below chance is no trace), as bench prints them."""
        return self.against in ("chance", "majority")

    @property
    def marked(self) -> np.ndarray:
        return np.array([bootstrap.excludes(interval, base, self.one_sided) for interval, base in zip(self.intervals.tolist(), self.baselines)])

    @property
    def above(self) -> np.ndarray:
        return self.intervals[:, 0] > self.baselines

    @property
    def below(self) -> np.ndarray:
        return self.intervals[:, 1] < self.baselines

    @property
    def flat(self) -> np.ndarray:
        """Zero-width intervals: every unit scored the same, so nothing can be marked (a degenerate null)."""
        return self.intervals[:, 1] - self.intervals[:, 0] <= 1e-9 * np.maximum(1.0, np.abs(self.intervals).max(axis=1))

    @property
    def detected(self) -> np.ndarray:
        """Marked on the side the planted effect lies on."""
        return self.above if self.side > 0 else self.below


def share(flags: np.ndarray) -> tuple[float, float]:
    """(share in %, its Monte-Carlo standard error in points)."""
    p = float(np.mean(flags))
    return 100.0 * p, 100.0 * float(np.sqrt(p * (1.0 - p) / max(len(flags), 1)))


def collect(effect: str, against: str, source: str, units: str, found: Iterable[tuple[Sequence[float], float, float]],
            planted: str = "", side: int = 1) -> Marks:
    """Marks from (interval, point, baseline) per replicate."""
    rows = list(found)
    return Marks(effect, against, source, units, np.array([row[0] for row in rows], dtype=np.float64),
                 np.array([row[1] for row in rows], dtype=np.float64), np.array([row[2] for row in rows], dtype=np.float64),
                 planted, side)


# ---------------------------------------------------------------------------------------------
# Planted data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessingWorld:
    """Images under K processing versions, in four blocks of coordinates: class | image | version noise | trace.

    An image is a unit vector over the class and image blocks (`separation` on its class's
    coordinate plus isotropic noise). Each version appends `wobble` times its own random unit
    vector of the version-noise block, and `trace` on the version's coordinate of the trace block.
    With trace 0 the versions of an image differ, but by noise alone, the same for every
    processing: every version has the same length and the same class and image blocks. Each
    effect's expected value given the train split is then exactly its null (the similarity shift
    needs the version noise orthogonal to the class centres: with isotropic noise the train
    split's two versions would differ by chance along the centres, a real shift given that split)."""

    classes: int = 10
    image_dims: int = 22
    noise_dims: int = 24
    versions: int = 4
    separation: float = 0.5
    wobble: float = 0.5
    trace: float = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"proc{v}" for v in range(self.versions))

    def split(self, generator: np.random.Generator, count: int, prefix: str, balanced: bool = False) -> SplitVectors:
        """`count` images with their versions; labels cycle through the classes (`balanced`) or are drawn uniformly."""
        labels = np.arange(count) % self.classes if balanced else generator.integers(0, self.classes, count)
        images = generator.normal(size=(count, self.classes + self.image_dims)) / np.sqrt(self.classes + self.image_dims)
        images[np.arange(count), labels] += self.separation
        images = unit_rows(images)
        vectors = {}
        for version, name in enumerate(self.names):
            noise = self.wobble * unit_rows(generator.normal(size=(count, self.noise_dims)))
            trace = np.zeros((count, self.versions))
            trace[:, version] = self.trace
            vectors[name] = np.concatenate([images, noise, trace], axis=1).astype(np.float32)
        return SplitVectors(np.array([f"{prefix}{i:05d}" for i in range(count)]), labels.astype(np.int64), vectors)

    def train(self, seed: int, sizes: Sizes) -> SplitVectors:
        """The train split every replicate shares."""
        return self.split(rng(seed, f"processing-train-{self.trace}"), sizes.train, "train", balanced=True)

    def val(self, seed: int, sizes: Sizes, replicate: int) -> SplitVectors:
        """Replicate `replicate`'s fresh val images."""
        return self.split(rng(seed, f"processing-val-{self.trace}", replicate), sizes.val, f"r{replicate:05d}/val")


def stacked(splits: Sequence[SplitVectors]) -> SplitVectors:
    """Several splits as one, rows in order (image ids stay sorted: they start with the replicate)."""
    names = list(splits[0].vectors)
    return SplitVectors(np.concatenate([split.image_ids for split in splits]), np.concatenate([split.labels for split in splits]),
                        {name: np.concatenate([split.vectors[name] for split in splits]) for name in names})


@dataclass(frozen=True)
class PairWorld:
    """PairCams subjects: a random unit content vector shot twice, each shot its own noise around it
    (`blur`), plus `trace` on the shot's camera-class coordinate (0: the camera leaves no trace)."""

    dims: int = 32
    blur: float = 0.9
    trace: float = 0.0

    def shots(self, generator: np.random.Generator, subjects: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vectors, subject ids, camera classes), both shots of every subject."""
        content = unit_rows(generator.normal(size=(subjects, self.dims)))
        rows = []
        for camera in (0, 1):
            shot = unit_rows(content + self.blur * generator.normal(size=(subjects, self.dims)) / np.sqrt(self.dims))
            trace = np.zeros((subjects, 2))
            trace[:, camera] = self.trace
            rows.append(np.concatenate([shot, trace], axis=1))
        ids = np.arange(subjects)
        return (np.concatenate(rows).astype(np.float32), np.concatenate([ids, ids]),
                np.repeat(np.array([0, 1]), subjects))


@dataclass(frozen=True)
class LabelWorld:
    """Acquisition labels with unbalanced classes and Gaussian features that carry `signal` on the
    label's coordinate (0: the features say nothing about the label)."""

    shares: tuple[float, ...] = ACQUISITION_CLASSES
    dims: int = 256  # wide, as embeddings are, on a few hundred images
    signal: float = 0.0
    version: str = "original"

    def split(self, generator: np.random.Generator, count: int, prefix: str) -> SplitVectors:
        """`count` images, each label drawn with the class shares."""
        labels = generator.choice(len(self.shares), size=count, p=np.asarray(self.shares))
        features = generator.normal(size=(count, self.dims))
        features[np.arange(count), labels] += self.signal
        return SplitVectors(np.array([f"{prefix}{i:05d}" for i in range(count)]), labels.astype(np.int64),
                            {self.version: features.astype(np.float32)})


# ---------------------------------------------------------------------------------------------
# Replicates of one bench outcome: the per-unit outcomes of the replicate's own units
# ---------------------------------------------------------------------------------------------


def knn_rows(outcome: knn_influence.KnnInfluence, rows: np.ndarray) -> knn_influence.KnnInfluence:
    """The outcome restricted to some queries: a query's hits depend on the train split and on itself alone."""
    return dataclasses.replace(outcome, triple_hits={key: hits[rows] for key, hits in outcome.triple_hits.items()},
                               uniform_hits={key: hits[rows] for key, hits in outcome.uniform_hits.items()}, neighbours={})


def knn_gap(outcome: knn_influence.KnnInfluence) -> tuple[list[float], float, float]:
    """knn-influence's pos−neg interval, point and null, as the leaderboard reads them."""
    per_query = outcome.per_query()
    return outcome.resample(RESAMPLING).intervals()["gap_pos_minus_neg"], float(np.mean(per_query["pos_same"] - per_query["neg_same"])), 0.0


def similarity_rows(found: similarity.Distributions, rows: np.ndarray) -> similarity.Distributions:
    """The distributions of some queries only (their histograms are not needed for intervals)."""
    return similarity.Distributions({}, {part: sums[rows] for part, sums in found.query_sums.items()},
                                    {part: sizes[rows] for part, sizes in found.query_sizes.items()})


def similarity_shifts(found: similarity.Distributions) -> dict[str, tuple[list[float], float, float]]:
    """Both shifts' intervals, points and null."""
    intervals = found.resample(RESAMPLING).intervals()
    parts = similarity.PARTS
    points = {"shift_semantic_same": found.mean(parts[0]) - found.mean(parts[1]),
              "shift_semantic_diff": found.mean(parts[2]) - found.mean(parts[3])}
    return {name: (intervals[name], points[name], 0.0) for name in points}


def probe_accuracy(outcome: probes.ProbeOutcome, hits: np.ndarray, images: int) -> tuple[list[float], float, float]:
    """probe-processing's interval and point for one replicate's hits ((seeds, K · images), version-major)."""
    replicate = dataclasses.replace(outcome, hits=hits)
    interval = replicate.resampled(images, "probe_acc1.mean", RESAMPLING).intervals()["probe_acc1.mean"]
    return interval, float(replicate.per_image(images).mean()), 100.0 / outcome.classes


def acquisition_marks(outcome: probes.ProbeOutcome, hits: np.ndarray, labels: np.ndarray) -> dict[str, tuple[list[float], float, float]]:
    """probe-acquisition's two intervals for one replicate's test hits, with bench's baselines
    (the majority share, and chance over the classes the test holds)."""
    replicate = dataclasses.replace(outcome, hits=hits[None])
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    per_class = np.array([hits[labels == label].mean() for label in present])
    return {
        "probe_acc1": (replicate.resampled(len(labels), "probe_acc1", RESAMPLING).intervals()["probe_acc1"], 100.0 * float(hits.mean()),
                       100.0 * counts.max() / counts.sum()),
        "probe_mean_class_acc": (class_mean_resampled(hits, labels, RESAMPLING).intervals()["probe_mean_class_acc"],
                                 100.0 * float(per_class.mean()), 100.0 / len(present)),
    }


def paircams_gap(found: paircams.PairRecall) -> tuple[list[float], float, float]:
    """paircams' same − different interval, point and null, as the cell holds them."""
    return found.resample(RESAMPLING).intervals()["gap_same_minus_different"], found.metrics()["gap_same_minus_different"], 0.0


# ---------------------------------------------------------------------------------------------
# Planted nulls and planted effects
# ---------------------------------------------------------------------------------------------

PLANTED = "planted"


def knn_planted(seed: int, sizes: Sizes, replicates: int, trace: float = 0.0) -> list[Marks]:
    """knn-influence's gap over replicates of fresh val images and one train split; all replicates
    are searched in one run (a query's hits depend on the train split and itself alone)."""
    world = ProcessingWorld(trace=trace)
    outcome = knn_influence.run(world.train(seed, sizes), stacked([world.val(seed, sizes, r) for r in range(replicates)]),
                                world.names, k=sizes.k, seeds=(0,))
    found = (knn_gap(knn_rows(outcome, np.arange(r * sizes.val, (r + 1) * sizes.val))) for r in range(replicates))
    return [collect("knn-influence gap_pos_minus_neg", "0", PLANTED, f"{sizes.val} val images", found, _planted(trace))]


def similarity_planted(seed: int, sizes: Sizes, replicates: int, trace: float = 0.0) -> list[Marks]:
    """similarity's two shifts: queries under the last version, the train split under it and under the first."""
    world = ProcessingWorld(trace=trace)
    train = world.train(seed, sizes)
    val = stacked([world.val(seed, sizes, r) for r in range(replicates)])
    a, b = world.names[-1], world.names[0]
    found = similarity.distributions(val.vectors[a], val.labels, train.vectors[a], train.vectors[b], train.labels)
    shifts = [similarity_shifts(similarity_rows(found, np.arange(r * sizes.val, (r + 1) * sizes.val))) for r in range(replicates)]
    return [collect(f"similarity {name}", "0", PLANTED, f"{sizes.val} val queries", (shift[name] for shift in shifts), _planted(trace))
            for name in ("shift_semantic_same", "shift_semantic_diff")]


def probe_processing_planted(seed: int, sizes: Sizes, replicates: int, trace: float = 0.0) -> list[Marks]:
    """probe-processing's accuracy: the probe is trained once on the fixed train split and tested
    on every replicate's val images (its training never sees val)."""
    world = ProcessingWorld(trace=trace)
    val = stacked([world.val(seed, sizes, r) for r in range(replicates)])
    outcome = processing_probe(world.train(seed, sizes), val, world.names, seeds=range(sizes.seeds), settings=sizes.settings)
    hits = outcome.hits.reshape(len(outcome.hits), world.versions, replicates, sizes.val)  # rows are version-major
    found = (probe_accuracy(outcome, hits[:, :, r].reshape(len(hits), -1), sizes.val) for r in range(replicates))
    return [collect("probe-processing probe_acc1.mean", "chance", PLANTED, f"{sizes.val} val images", found, _planted(trace))]


def probe_acquisition_planted(seed: int, sizes: Sizes, replicates: int, signal: float = 0.0, spurious: float = 0.0) -> list[Marks]:
    """probe-acquisition's two accuracies: train and val fixed (search, then the final fit on both),
    fresh test images in every replicate, all tested at once. `spurious`: a label signal in train
    and val that the test population lacks, so the probe guesses varied classes on test (with no
    signal anywhere it settles on the majority class, and every interval is flat)."""
    fitted, tested = LabelWorld(signal=signal + spurious), LabelWorld(signal=signal)
    train = fitted.split(rng(seed, f"acquisition-train-{signal}-{spurious}"), sizes.train, "train")
    val = fitted.split(rng(seed, f"acquisition-val-{signal}-{spurious}"), sizes.train // 3, "val")
    tests = [tested.split(rng(seed, f"acquisition-test-{signal}", r), sizes.test, f"r{r:05d}/test") for r in range(replicates)]
    outcome = acquisition_probe(train, val, stacked(tests), tested.version, settings=sizes.settings)
    marks = [acquisition_marks(outcome, outcome.hits[0, r * sizes.test:(r + 1) * sizes.test], test.labels)
             for r, test in enumerate(tests)]
    planted = f"label signal {signal:g}" if signal else ""
    source = f"planted, label signal {spurious:g} in train and val only" if spurious else PLANTED
    return [collect(f"probe-acquisition {name}", against, source, f"{sizes.test} test images", (mark[name] for mark in marks), planted)
            for name, against in (("probe_acc1", "majority"), ("probe_mean_class_acc", "chance"))]


def probe_acquisition_nulls(seed: int, sizes: Sizes, replicates: int) -> list[Marks]:
    """No label signal anywhere, and a signal in train and val only."""
    return (probe_acquisition_planted(seed, sizes, replicates)
            + probe_acquisition_planted(seed, sizes, replicates, spurious=SPURIOUS_SIGNAL))


SPURIOUS_SIGNAL = 1.5


def paircams_planted(seed: int, sizes: Sizes, replicates: int, trace: float = 0.0) -> list[Marks]:
    """paircams' gap over replicates of fresh subjects (each replicate is its own retrieval problem).
    A camera trace pulls a query towards its own camera class, so the planted gap is negative."""
    world = PairWorld(trace=trace)
    found = (paircams_gap(paircams.recall_at_1(*world.shots(rng(seed, f"pairs-{trace}", r), sizes.subjects))) for r in range(replicates))
    return [collect("paircams gap_same_minus_different", "0", PLANTED, f"{sizes.subjects} subjects", found, _planted(trace), side=-1)]


MITIGATE_TRACE = 0.3  # the planted trace mitigate's erasure removes before its nulls are measured


def mitigate_planted(seed: int, sizes: Sizes, replicates: int) -> list[Marks]:
    """mitigate's three marked measures after a planted trace is erased: the subspace is learned
    from the fixed train split, and before/after are measured on all replicates' val images at once."""
    world = ProcessingWorld(trace=MITIGATE_TRACE)
    train = world.train(seed, sizes)
    val = stacked([world.val(seed, sizes, r) for r in range(replicates)])
    found = erasure.learn(train, world.names)
    settings = mitigate.Settings(knn_influence.Settings(world.names, sizes.k, tuple(range(sizes.seeds)), "versioned", "auto"), sizes.settings)
    before = mitigate.measures(train, val, settings, "cpu")
    after = mitigate.measures(found.apply(train), found.apply(val), settings, "cpu")
    outcomes = []
    for r in range(replicates):
        rows = slice(r * sizes.val, (r + 1) * sizes.val)
        outcomes.append(mitigate.Mitigation({k: v[rows] for k, v in before.items()}, {k: v[rows] for k, v in after.items()}, found, settings,
                                            len(np.unique(train.labels)), (len(train.image_ids), sizes.val), 0.0, "cpu"))
    source = f"planted, trace {MITIGATE_TRACE:g} erased ({found.directions} directions)"
    measures = (("after", "gap_pos_minus_neg", "0", 0.0), ("after", "probe_acc1", "chance", found.chance), ("change", "all_same", "0", 0.0))
    return [collect(f"mitigate {stage}.{name}", against, source, f"{sizes.val} val images",
                    ((outcome.resample(RESAMPLING).intervals()[f"{stage}.{name}"], outcome.metrics()[f"{stage}.{name}"], baseline)
                     for outcome in outcomes))
            for stage, name, against, baseline in measures]


def _planted(size: float) -> str:
    return f"trace {size:g}" if size else ""


# planted effect sizes for the power table: a weak one and a clear one per task
POWER = {
    "knn-influence": (knn_planted, (0.06, 0.1)),
    "similarity": (similarity_planted, (0.03, 0.06)),
    "probe-processing": (probe_processing_planted, (0.02, 0.03)),
    "probe-acquisition": (probe_acquisition_planted, (1.0, 2.0)),
    "paircams": (paircams_planted, (0.1, 0.2)),
}
NULLS = {
    "knn-influence": knn_planted,
    "similarity": similarity_planted,
    "probe-processing": probe_processing_planted,
    "probe-acquisition": probe_acquisition_nulls,
    "paircams": paircams_planted,
}


# ---------------------------------------------------------------------------------------------
# Real images under the random-weight control, with shuffled assignments
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealData:
    """Stored embeddings of one dataset (train and val under a processing group) and of paircams-sim."""

    dataset: str  # its key in the store
    encoder: str
    group: str
    classes: tuple[str, ...]
    train: SplitVectors | None
    val: SplitVectors | None
    k: int
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # paircams-sim: vectors, subject ids, camera classes

    @property
    def name(self) -> str:
        return f"{self.dataset} x {self.encoder}, {self.group}"


def extract(home: Path, dataset: str, encoder: str, root: Path | None, *selection: str) -> None:
    """Embed what the store lacks with `python -m bench extract` (resumable: stored rows are skipped)."""
    command = [sys.executable, "-m", "bench", "--home", str(home), "extract", "--dataset", dataset, "--encoders", encoder, *selection]
    if root is not None:
        command += ["--root", str(root)]
    print(f"  embedding {dataset} with {encoder} into {home} (skipped where stored) ...", flush=True)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"extraction of {dataset} x {encoder} into {home} failed (its output ends below). Run "
                         f"`{' '.join(command)}` to see all of it, or leave the real nulls out with --no-real.\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"  ... done in {time.perf_counter() - began:.0f} s", flush=True)


def load_real(home: Path, dataset: str, root: Path | None, encoder: str, group: str, wanted: set[str]) -> RealData:
    """The embeddings the real nulls need, extracted first where missing."""
    from bench.workspace import Workspace

    classes = processing.group(group)
    store = Store(Workspace.at(home).embeddings_uri)
    resolved = data.resolve(dataset, DatasetOptions(root=root))
    train = val = pairs = None
    if wanted - {"paircams", "mitigate"}:
        extract(home, dataset, encoder, root, "--group", group)
        train = store.split_vectors(resolved.key, encoder, "train", classes)
        val = store.split_vectors(resolved.key, encoder, "val", classes)
    if "paircams" in wanted:
        extract(home, PAIRS_DATASET, encoder, None, "--processings", paircams.PROCESSING, "--splits", "test")
        rows = store.scan(data.get(PAIRS_DATASET).store_key(), encoder, where=f"split = 'test' AND processing = '{paircams.PROCESSING}'",
                          columns=["subject_id", "camera_class", "vector"])
        pairs = (vector_matrix(rows), np.asarray(rows.column("subject_id").to_numpy(zero_copy_only=False), dtype=np.int64),
                 np.asarray(rows.column("camera_class").to_numpy(zero_copy_only=False), dtype=np.int64))
    return RealData(resolved.key, encoder, group, classes, train, val, resolved.spec.knn_k, pairs)


def permutations(generator: np.random.Generator, images: int, versions: int) -> np.ndarray:
    """(images, versions): image i's version shown under processing label t is column t of row i."""
    return generator.permuted(np.tile(np.arange(versions), (images, 1)), axis=1)


def knn_real(real: RealData, seed: int, replicates: int) -> list[Marks]:
    """Each replicate shows every val image's versions under a random permutation of the
    processing labels; the hits of every (shown version, pos, neg) are searched once."""
    classes, images = real.classes, len(real.val.image_ids)
    outcome = knn_influence.run(real.train, real.val, classes, k=real.k, seeds=(0,))
    shown = np.stack([np.stack([np.stack([outcome.triple_hits[t, p, n] for n in classes]) for p in classes]) for t in classes])
    every = np.arange(images)

    def replicate(r: int) -> tuple[list[float], float, float]:
        order = permutations(rng(seed, "real-knn", r), images, len(classes))
        hits = {(t, p, n): shown[order[:, ti], pi, ni, every]
                for ti, t in enumerate(classes) for pi, p in enumerate(classes) for ni, n in enumerate(classes)}
        return knn_gap(dataclasses.replace(outcome, triple_hits=hits, neighbours={}))

    return [collect("knn-influence gap_pos_minus_neg", "0", f"{real.name}: val labels permuted", f"{images} val images",
                    (replicate(r) for r in range(replicates)))]


def similarity_real(real: RealData, seed: int, replicates: int) -> list[Marks]:
    """Each val query shows a random one of its two versions, and which train version counts as
    'same processing' is drawn independently per query (the shift's null: the query's processing
    says nothing about which train version is nearer)."""
    a, b = real.classes[-1], real.classes[0]
    images = len(real.val.image_ids)
    found = [similarity.distributions(real.val.vectors[version], real.val.labels, real.train.vectors[a], real.train.vectors[b],
                                      real.train.labels) for version in (a, b)]
    parts = similarity.PARTS
    swapped = {parts[0]: parts[1], parts[1]: parts[0], parts[2]: parts[3], parts[3]: parts[2]}

    def replicate(r: int) -> dict[str, tuple[list[float], float, float]]:
        generator = rng(seed, "real-similarity", r)
        version, role = generator.integers(0, 2, images), generator.integers(0, 2, images).astype(bool)
        every = np.arange(images)

        def per_query(field: str) -> dict[str, np.ndarray]:
            values = {part: np.stack([getattr(one, field)[part] for one in found])[version, every] for part in parts}
            return {part: np.where(role, values[swapped[part]], values[part]) for part in parts}

        return similarity_shifts(similarity.Distributions({}, per_query("query_sums"), per_query("query_sizes")))

    shifts = [replicate(r) for r in range(replicates)]
    return [collect(f"similarity {name}", "0", f"{real.name} ({a} vs {b}): version and role drawn per query", f"{images} val queries",
                    (shift[name] for shift in shifts)) for name in ("shift_semantic_same", "shift_semantic_diff")]


def probe_processing_real(real: RealData, seed: int, replicates: int, sizes: Sizes) -> list[Marks]:
    """The probe is trained once on the train split; each replicate tests it on the val images
    with their versions' labels permuted per image. Every version of every val image is scored
    under every label once (as K · images test images), which gives each replicate's hits."""
    classes, images = real.classes, len(real.val.image_ids)
    count = len(classes)
    every = np.stack([real.val.vectors[name] for name in classes], axis=1).reshape(images * count, -1)  # row i · K + v
    probed = SplitVectors(np.array([f"{image}#{v}" for image in real.val.image_ids for v in range(count)]),
                          np.repeat(real.val.labels, count), {name: every for name in classes})
    outcome = processing_probe(real.train, probed, classes, seeds=range(sizes.seeds), settings=sizes.settings)
    said = outcome.hits.reshape(len(outcome.hits), count, images, count)  # [seed, label t, image i, version v]: the probe says t

    def replicate(r: int) -> tuple[list[float], float, float]:
        order = permutations(rng(seed, "real-probe-processing", r), images, count)
        hits = said[:, np.arange(count)[:, None], np.arange(images)[None, :], order.T]  # [seed, t, i]
        return probe_accuracy(outcome, hits.reshape(len(hits), -1), images)

    return [collect("probe-processing probe_acc1.mean", "chance", f"{real.name}: val labels permuted", f"{images} val images",
                    (replicate(r) for r in range(replicates)))]


def probe_acquisition_real(real: RealData, seed: int, replicates: int, sizes: Sizes) -> list[Marks]:
    """The dataset's own classes as the label under the group's last processing: train images
    split 3:1 into train and val by a hash of their id, val images as test; the probe is trained
    once and each replicate permutes the test labels."""
    version = real.classes[-1]
    held = np.array([stable_int(f"{seed}|calibration-val|{image}") % 4 == 0 for image in real.train.image_ids])

    def part(rows: np.ndarray) -> SplitVectors:
        return SplitVectors(real.train.image_ids[rows], real.train.labels[rows], {version: real.train.vectors[version][rows]})

    test = real.val
    classes = int(max(real.train.labels.max(), test.labels.max())) + 1
    images = len(test.image_ids)
    probed = SplitVectors(np.array([f"{image}#{c}" for image in test.image_ids for c in range(classes)]),
                          np.tile(np.arange(classes), images), {version: np.repeat(test.vectors[version], classes, axis=0)})
    outcome = acquisition_probe(part(~held), part(held), probed, version, settings=sizes.settings)
    predicted = outcome.hits[0].reshape(images, classes).argmax(axis=1)

    def replicate(r: int) -> dict[str, tuple[list[float], float, float]]:
        labels = rng(seed, "real-probe-acquisition", r).permutation(test.labels)
        return acquisition_marks(outcome, predicted == labels, labels)

    marks = [replicate(r) for r in range(replicates)]
    source = f"{real.dataset} x {real.encoder}, {version}: class labels of test permuted"
    return [collect(f"probe-acquisition {name}", against, source, f"{images} test images", (mark[name] for mark in marks))
            for name, against in (("probe_acc1", "majority"), ("probe_mean_class_acc", "chance"))]


def paircams_real(real: RealData, seed: int, replicates: int) -> list[Marks]:
    """paircams-sim with the two camera classes swapped within a random half of the subjects."""
    vectors, subjects, cameras = real.pairs
    ids = np.unique(subjects)

    def replicate(r: int) -> tuple[list[float], float, float]:
        generator = rng(seed, "real-paircams", r)
        swapped = np.isin(subjects, generator.permutation(ids)[: len(ids) // 2])
        return paircams_gap(paircams.recall_at_1(vectors, subjects, np.where(swapped, 1 - cameras, cameras)))

    return [collect("paircams gap_same_minus_different", "0", f"{PAIRS_DATASET} x {real.encoder}: classes swapped in half the subjects",
                    f"{len(ids)} subjects", (replicate(r) for r in range(replicates)))]


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def verdict(marks: Marks) -> str:
    """ok: at most the goal plus one Monte-Carlo error; over: beyond two; edge: between; flat: most
    intervals have zero width, so the rate says nothing."""
    if share(marks.flat)[0] >= 50.0:
        return "flat"
    rate, error = share(marks.marked)
    if rate <= GOAL + error:
        return "ok"
    return "over" if rate > GOAL + 2.0 * error else "edge"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cell).rjust(width) if i in right else str(cell).ljust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), "  ".join("-" * width for width in widths), *(line(row) for row in rows)])


def number(value: float) -> str:
    return f"{value:.2e}" if value and abs(value) < 0.01 else f"{value:.2f}"


def null_table(found: Sequence[Marks]) -> str:
    headers = ("effect", "vs", "null", "units", "R", "marked %", "± MC", "above", "below", "flat", "est − null (± se)", "median width",
               "width / 3.92 sd", "verdict")
    rows = []
    for marks in found:
        rate, error = share(marks.marked)
        offset = marks.points - marks.baselines
        spread = float(np.std(offset, ddof=1) / np.sqrt(len(offset))) if len(offset) > 1 else float("nan")
        rows.append((marks.effect, marks.against, marks.data, marks.units, str(marks.replicates), f"{rate:.1f}", f"{error:.1f}",
                     f"{share(marks.above)[0]:.1f}", f"{share(marks.below)[0]:.1f}", f"{share(marks.flat)[0]:.0f}",
                     f"{number(float(offset.mean()))} (± {number(spread)})",
                     number(float(np.median(marks.intervals[:, 1] - marks.intervals[:, 0]))), width_ratio(marks), verdict(marks)))
    return format_table(headers, rows, {4, 5, 6, 7, 8, 9, 11, 12})


def width_ratio(marks: Marks) -> str:
    """The median interval width over the width a normal interval would need to cover the point
    estimates' own spread across replicates (3.92 standard deviations): about 1 when the
    bootstrap sees the spread it should; below 1, intervals too narrow."""
    spread = float(np.std(marks.points, ddof=1)) if marks.replicates > 1 else 0.0
    if spread == 0.0 or verdict(marks) == "flat":
        return "-"
    return f"{float(np.median(marks.intervals[:, 1] - marks.intervals[:, 0])) / (3.92 * spread):.2f}"


def power_table(found: Sequence[Marks]) -> str:
    headers = ("effect", "vs", "planted", "units", "R", "detected %", "± MC", "marked wrong side %", "mean est − null", "median width")
    rows = []
    for marks in found:
        rate, error = share(marks.detected)
        wrong = marks.below if marks.side > 0 else marks.above
        rows.append((marks.effect, marks.against, marks.planted, marks.units, str(marks.replicates), f"{rate:.1f}", f"{error:.1f}",
                     f"{share(wrong)[0]:.1f}", number(float(np.mean(marks.points - marks.baselines))),
                     number(float(np.median(marks.intervals[:, 1] - marks.intervals[:, 0])))))
    return format_table(headers, rows, {4, 5, 6, 7, 8, 9})


EPILOG = f"""what is measured
  For every effect bench marks, many null replicates (data with no effect), each giving the
  interval bench would print; the share of replicates whose interval excludes the null is the
  false-mark rate. Goal: at most {GOAL:g} % plus its Monte-Carlo error sqrt(p(1-p)/R). Then
  effects of known size are planted and the share detected (marked on the right side) is the
  power. The intervals claim to cover the variability of the test units (val images, subjects,
  test images) given the train split and the trained probes; so the train split stays fixed and
  every replicate draws fresh test units (planted) or re-randomises the test units' assignment
  (real). A query's or test image's outcome depends on the train split and on itself alone, so
  all replicates are searched or probed in one call and each replicate's intervals come from its
  own units: the probes and mitigate are no slower per replicate than the rest.

planted nulls (fixed train split, fresh test units per replicate)
  knn-influence, similarity, probe-processing: {ProcessingWorld.classes} classes, K = {ProcessingWorld.versions} versions per image,
    unit vectors [class + image noise | version noise | trace]; a version is its image plus its
    own random unit vector of the version-noise block (orthogonal to the image and the class
    centres, so every version has the same length and content), trace 0.
  paircams: a random content vector per subject, each of its two shots its own noise around it,
    no camera shift; fresh subjects per replicate.
  probe-acquisition: classes with shares {', '.join(f'{s:g}' for s in ACQUISITION_CLASSES)}, {LabelWorld.dims}-d Gaussian features; fixed
    train and val, fresh test whose features carry no label. Two nulls: no label signal in
    train and val either (the probe mostly guesses the majority class), and a signal of {SPURIOUS_SIGNAL:g}
    in train and val only (the probe guesses varied classes, none of them informative on test).
  mitigate: a trace of {MITIGATE_TRACE:g} is planted and erasure.learn removes it from the fixed train split;
    then after.gap (vs 0), after.probe (vs chance) and the price (vs 0) are nulls up to what the
    erasure leaves (the est − null column shows it).
real nulls ({REAL_ENCODER} embeddings of --dataset, default demo; skipped by --quick unless --home is given)
  knn-influence, probe-processing: each val image's versions under a random permutation of the
    processing labels (the probe trained once on the real train split).
  similarity: each val query under a random one of (a, b), and which train version counts as
    "same processing" drawn at random per query.
  probe-acquisition: the dataset's classes as the label; train split 3:1 into train and val, val
    images as test, the test labels permuted per replicate.
  paircams: paircams-sim with the camera classes swapped within a random half of the subjects.

reading the table
  marked % ± MC: share of null replicates marked *, with its Monte-Carlo error; above / below:
  marked above or below the null (a two-sided mark); flat: share of zero-width intervals (every
  unit scored the same: nothing can be marked, so the null says little). est − null: the mean
  over replicates of the point estimate minus the null (± its standard error): about 0 when the
  null holds. width / 3.92 sd: the median interval width over 3.92 standard deviations of the
  point estimates across replicates: about 1 when the bootstrap sees the spread it should.
  verdict: ok (within the goal + 1 MC error), edge (within 2), over; flat when most intervals
  have zero width.
  Power: the share of replicates marked on the side of the planted effect.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/calibration.py",
        description="False-mark rate on nulls, and power on planted effects, of every interval bench marks with *. "
        f"The default run takes about {DEFAULT_MINUTES} minutes on 2 CPU cores, about half of it embedding demo and "
        "paircams-sim (skipped when --home already holds them).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    counts = parser.add_argument_group("replicates")
    counts.add_argument("--replicates", type=positive_int,
                        help=f"null replicates per effect (default: {Sizes.replicates}; --quick: {QUICK.replicates})")
    counts.add_argument("--power-replicates", type=positive_int,
                        help=f"replicates per planted effect size (default: {Sizes.power_replicates}; --quick: {QUICK.power_replicates})")
    counts.add_argument("--mitigate-replicates", type=positive_int,
                        help=f"mitigate's null replicates (default: {Sizes.mitigate_replicates}; --quick: {QUICK.mitigate_replicates})")
    parser.add_argument("--quick", action="store_true", help="few and small replicates, planted data only (unless --home): a smoke test")
    parser.add_argument("--seed", type=int, default=0, help="seed of every planted draw and shuffle (default: 0)")
    parser.add_argument("--only", choices=TASKS, action="append", help="calibrate this task only (repeatable)")
    parser.add_argument("--no-planted", action="store_true", help="no planted nulls (the real ones and power only)")
    parser.add_argument("--no-real", action="store_true", help="no real nulls: no embeddings are read or extracted")
    parser.add_argument("--no-power", action="store_true", help="nulls only")
    real = parser.add_argument_group("real embeddings (default: demo and paircams-sim, embedded into a temporary folder)")
    real.add_argument("--home", type=Path, help="workspace holding embeddings/; what is missing is extracted into it")
    real.add_argument("--dataset", default="demo", help="dataset with train and val splits (default: demo)")
    real.add_argument("--root", type=Path, help="the dataset's folder, for datasets that live on disk")
    real.add_argument("--encoder", default=REAL_ENCODER, help=f"encoder whose embeddings to read (default: {REAL_ENCODER})")
    real.add_argument("--group", default="jpeg", help=f"processing group: {', '.join(processing.GROUPS)} (default: jpeg)")
    return parser


Job = tuple[str, Callable[[], list[Marks]]]


def planted_jobs(tasks: list[str], seed: int, sizes: Sizes) -> list[Job]:
    jobs: list[Job] = []
    for task in tasks:
        if task == "mitigate":
            jobs.append(("mitigate, planted null after erasure", lambda: mitigate_planted(seed, sizes, sizes.mitigate_replicates)))
        else:
            jobs.append((f"{task}, planted null", lambda task=task: NULLS[task](seed, sizes, sizes.replicates)))
    return jobs


def power_jobs(tasks: list[str], seed: int, sizes: Sizes) -> list[Job]:
    jobs: list[Job] = []
    for task in tasks:
        runner, levels = POWER.get(task, (None, ()))
        for level in levels:
            jobs.append((f"{task}, planted effect {level:g}",
                         lambda runner=runner, level=level: runner(seed, sizes, sizes.power_replicates, level)))
    return jobs


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    base = QUICK if arguments.quick else Sizes()
    sizes = dataclasses.replace(base, **{name: getattr(arguments, name) or getattr(base, name)
                                         for name in ("replicates", "power_replicates", "mitigate_replicates")})
    tasks = [task for task in TASKS if not arguments.only or task in arguments.only]
    real_tasks = [task for task in tasks if task != "mitigate"]  # mitigate is calibrated on planted data only
    use_real = not arguments.no_real and bool(real_tasks) and (not arguments.quick or arguments.home is not None)
    began = time.perf_counter()
    print(f"calibration: {sizes.replicates} null replicates per effect ({sizes.mitigate_replicates} for mitigate), "
          f"{sizes.power_replicates} per planted effect size; intervals: {RESAMPLING.resamples} resamples, "
          f"seed {RESAMPLING.seed}", flush=True)

    nulls: list[Marks] = []
    jobs = [] if arguments.no_planted else planted_jobs(tasks, arguments.seed, sizes)
    for index, (title, job) in enumerate(jobs, start=1):
        nulls += timed(f"[{index}/{len(jobs)}] {title}", job)
    if use_real:
        nulls += real_nulls(arguments, real_tasks, arguments.seed, sizes)
    powers: list[Marks] = []
    jobs = [] if arguments.no_power else power_jobs(tasks, arguments.seed, sizes)
    for index, (title, job) in enumerate(jobs, start=1):
        powers += timed(f"[power {index}/{len(jobs)}] {title}", job)

    print(f"\nFalse marks on nulls (goal: at most {GOAL:g} % + its Monte-Carlo error)")
    print(null_table(nulls))
    if powers:
        print("\nPower on planted effects (marked on the planted side)")
        print(power_table(powers))
    over = [f"{marks.effect} ({marks.data})" for marks in nulls if verdict(marks) == "over"]
    print(f"\n{len(nulls)} nulls, {len(over)} over the goal" + (f": {'; '.join(over)}" if over else "")
          + f"; {time.perf_counter() - began:.0f} s")
    return 0


def timed(title: str, job: Callable[[], list[Marks]]) -> list[Marks]:
    """Run one job, printing its title, its time and the share it marked (or detected)."""
    print(f"{title} ...", flush=True)
    began = time.perf_counter()
    found = job()
    summary = ", ".join(f"{m.effect.split(' ')[1]} {share(m.detected if m.planted else m.marked)[0]:.1f} %" for m in found)
    print(f"    {time.perf_counter() - began:.0f} s: {summary}", flush=True)
    return found


def real_nulls(arguments: argparse.Namespace, tasks: list[str], seed: int, sizes: Sizes) -> list[Marks]:
    """The real-data nulls, from --home's embeddings or from a temporary folder removed afterwards."""
    home = arguments.home or Path(tempfile.mkdtemp(prefix="bench-calibration-"))
    try:
        print(f"real nulls: {arguments.encoder} on {arguments.dataset} ({arguments.group}) and {PAIRS_DATASET}", flush=True)
        real = load_real(home, arguments.dataset, arguments.root, arguments.encoder, arguments.group, set(tasks))
        runners = {
            "knn-influence": lambda: knn_real(real, seed, sizes.replicates),
            "similarity": lambda: similarity_real(real, seed, sizes.replicates),
            "probe-processing": lambda: probe_processing_real(real, seed, sizes.replicates, sizes),
            "probe-acquisition": lambda: probe_acquisition_real(real, seed, sizes.replicates, sizes),
            "paircams": lambda: paircams_real(real, seed, sizes.replicates),
        }
        found: list[Marks] = []
        for index, task in enumerate(tasks, start=1):
            found += timed(f"[real {index}/{len(tasks)}] {task}, shuffled null", runners[task])
        return found
    finally:
        if arguments.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
