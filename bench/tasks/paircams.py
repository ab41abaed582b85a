"""PairCams near-duplicate retrieval (docs/protocol.md#paircams): does a query find the same subject shot by
the other camera class, when the distractors share the query's camera class ("same") or the
target's ("different")?

Works on any dataset whose rows carry `subject_id` and a binary `camera_class` (0 DSLR/compact,
1 phone), each subject shot exactly once per class: `paircams` and the offline `paircams-sim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

import numpy as np

from bench import bootstrap, data, measures, results
from bench.data import ImageRecord
from bench.encoders.spec import EncoderSpec
from bench.errors import BenchError
from bench.picks import Entry, Picks, Shot, Strip, pick
from bench.tasks.options import BOOTSTRAP, PERMUTATIONS, inference
from bench.tasks.spec import Column, Inputs, TaskSpec, Trace, Work
from bench.vectors import normalise

NAME = "paircams"
GAP = "gap_same_minus_different"
PROCESSING = "original"  # the files as they are: the traces under test come from the cameras
DIRECTIONS = measures.PAIR_DIRECTIONS  # query camera class 0, 1
CAMERA_NAMES = ("DSLR/compact", "phone")  # camera class 0, 1 as a reader knows them
GALLERY_QUERIES = 3  # queries shown per encoder in the report
GALLERY_TOP = 5  # candidates shown per collection
GALLERY_SEED = 0


class PairCamsDataError(BenchError, ValueError):
    """The dataset's rows cannot be paired as PairCams needs."""


@dataclass(frozen=True)
class PairRecall:
    """Per query direction and subject, which distractors score at least as high as the target,
    in both collections; a query is a hit where none does."""

    same_beaters: dict[str, np.ndarray]  # direction -> (pairs, pairs) bool; distractors: the query's camera class
    different_beaters: dict[str, np.ndarray]  # distractors: the target's camera class

    @property
    def pairs(self) -> int:
        return len(next(iter(self.same_beaters.values())))

    @cached_property
    def same_hits(self) -> dict[str, np.ndarray]:
        return {direction: ~beaters.any(axis=1) for direction, beaters in self.same_beaters.items()}

    @cached_property
    def different_hits(self) -> dict[str, np.ndarray]:
        return {direction: ~beaters.any(axis=1) for direction, beaters in self.different_beaters.items()}

    @property
    def same(self) -> dict[str, float]:
        return {direction: 100.0 * float(np.mean(hits)) for direction, hits in self.same_hits.items()}

    @property
    def different(self) -> dict[str, float]:
        return {direction: 100.0 * float(np.mean(hits)) for direction, hits in self.different_hits.items()}

    def resample(self, resampling: bootstrap.Resampling, units: np.ndarray | None = None) -> bootstrap.Resampled:
        """Every recall and the gap from the same resamples of subjects (or of their `units`, codes
        per subject), queries and distractors redrawn together (bench.measures.pair_resamples)."""
        metrics = self.metrics()
        names = [f"recall_at_1.{collection}_{d}" for collection in ("same", "different") for d in DIRECTIONS]
        points = {name: metrics[name] for name in [*names, "recall_at_1.same", "recall_at_1.different", "gap_same_minus_different"]}
        if not resampling.enabled:
            return bootstrap.Resampled({}, points, self.pairs)
        codes = np.arange(self.pairs) if units is None else units
        samples = measures.pair_resamples(self.same_beaters, self.different_beaters, codes, resampling)
        return bootstrap.Resampled({name: samples[name] for name in points}, points, self.pairs)

    def metrics(self) -> dict[str, float]:
        per_same, per_different = self.same, self.different
        same = float(np.mean(list(per_same.values())))
        different = float(np.mean(list(per_different.values())))
        return {
            "recall_at_1.same": same, "recall_at_1.different": different,
            **{f"recall_at_1.same_{d}": v for d, v in per_same.items()}, **{f"recall_at_1.different_{d}": v for d, v in per_different.items()},
            "gap_same_minus_different": same - different,
            "chance": 100.0 / self.pairs,  # one target among `pairs` candidates in either collection
        }


def pair_rows(subject_ids: np.ndarray, camera_classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of camera class 0 and class 1, aligned so that entry i of both is subject i's pair."""
    subject_ids, camera_classes = np.asarray(subject_ids), np.asarray(camera_classes)
    unknown = sorted(set(camera_classes.tolist()) - {0, 1})
    if unknown:
        raise PairCamsDataError(f"paircams needs camera_class 0 (DSLR/compact) or 1 (phone); found {unknown}")
    sides = []
    for camera in (0, 1):
        rows = np.flatnonzero(camera_classes == camera)
        order = np.argsort(subject_ids[rows], kind="stable")
        sides.append(rows[order])
    subjects = [subject_ids[rows] for rows in sides]
    for camera, ids in enumerate(subjects):
        repeated = np.unique(ids[1:][ids[1:] == ids[:-1]])
        if len(repeated):
            raise PairCamsDataError(f"paircams: subjects {repeated[:5].tolist()} have more than one camera-class-{camera} image")
    if not np.array_equal(subjects[0], subjects[1]):
        alone = np.setxor1d(subjects[0], subjects[1])
        raise PairCamsDataError(f"paircams: subjects {alone[:5].tolist()} ({len(alone)} in all) lack a partner in the other camera class")
    if len(subjects[0]) < 2:
        raise PairCamsDataError("paircams needs at least two subjects")
    return sides[0], sides[1]


def recall_of(unit: np.ndarray, sides: tuple[np.ndarray, np.ndarray]) -> PairRecall:
    """Both collections, both query directions, on L2-normalised float32 vectors paired by `pair_rows`."""
    same: dict[str, np.ndarray] = {}
    different: dict[str, np.ndarray] = {}
    for camera, direction in enumerate(DIRECTIONS):
        own, partners = unit[sides[camera]], unit[sides[1 - camera]]
        same[direction], different[direction] = measures.beaters(own, own, partners)
    return PairRecall(same, different)


def recall_at_1(vectors: np.ndarray, subject_ids: np.ndarray, camera_classes: np.ndarray) -> PairRecall:
    """Both collections, both query directions, on the vectors L2-normalised in float32 (docs/protocol.md#paircams)."""
    return recall_of(normalise(vectors), pair_rows(subject_ids, camera_classes))


@dataclass(frozen=True)
class Ranked:
    """A query's best candidates in one collection and where its target stands."""

    rows: np.ndarray  # rows of the input, best first (score desc, then row asc)
    scores: np.ndarray
    target_rank: int  # 1 + distractors scoring at least the target: a tie counts against it, as in recall@1


def _ranked(unit: np.ndarray, query: int, target: int, collection: np.ndarray, top: int) -> Ranked:
    scores = unit[collection] @ unit[query]
    order = np.lexsort((collection, -scores))[:top]
    beaten = int(np.sum((scores >= scores[collection == target][0]) & (collection != target)))
    return Ranked(collection[order], scores[order], beaten + 1)


def picks(
    unit: np.ndarray, sides: tuple[np.ndarray, np.ndarray], recall: PairRecall, records: list[ImageRecord],
    subject_ids: np.ndarray, camera_classes: np.ndarray, spec: EncoderSpec,
    *, count: int = GALLERY_QUERIES, top: int = GALLERY_TOP, seed: int = GALLERY_SEED,
) -> Picks:
    """`count` queries from both directions in an order fixed by (seed, image id), with a miss of
    the "same" collection among them when there is one, each with its `top` candidates per
    collection; `records` are the rows' images, row for row."""
    queries, targets, misses = [], [], []
    for camera, direction in enumerate(DIRECTIONS):
        queries += sides[camera].tolist()
        targets += sides[1 - camera].tolist()
        misses += (~recall.same_hits[direction]).tolist()
    chosen = pick([records[row].image_id for row in queries], count, np.array(misses), seed, "paircams-gallery")

    def shot(row: int, **placed: Any) -> Shot:
        labels = (f"subject {subject_ids[row]}", CAMERA_NAMES[camera_classes[row]])
        return Shot.of(records[row], PROCESSING, labels, **placed)

    def strip(name: str, ranked: Ranked, target: int) -> Strip:
        shots = tuple(shot(int(row), rank=rank, score=float(score), target=bool(row == target))
                      for rank, (row, score) in enumerate(zip(ranked.rows, ranked.scores), start=1))
        return Strip(name, ranked.target_rank == 1, shots, fact=str(ranked.target_rank))

    rows = np.arange(len(unit))
    entries = []
    for position in chosen:
        query, target = queries[position], targets[position]
        camera = camera_classes[query]
        same = np.flatnonzero(((camera_classes == camera) & (rows != query)) | (rows == target))
        different = np.flatnonzero(camera_classes != camera)
        entries.append(Entry(shot(query), shot(target, target=True), (
            strip("same", _ranked(unit, query, target, same, top), target),
            strip("different", _ranked(unit, query, target, different, top), target),
        )))
    return Picks(spec.input_size, spec.interpolation, tuple(entries))


@dataclass(frozen=True)
class PairCamsOutcome:
    recall: PairRecall
    shown: Picks
    units: np.ndarray | None = None  # unit code per subject (None: each subject its own)
    gap: measures.Effect | None = None  # same − different with its permutation test

    def metrics(self) -> dict[str, float]:
        return self.recall.metrics()

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        found = self.recall.resample(resampling, self.units)
        tests = {GAP: self.gap.test} if self.gap is not None else {}
        return bootstrap.Resampled(found.samples, found.points, found.units, tests)

    def detail(self) -> dict[str, Any]:
        return {"pairs": self.recall.pairs, "same": self.recall.same, "different": self.recall.different}

    def provenance(self) -> dict[str, Any]:
        return {"tie_rule": "a distractor scoring equal to the target counts as a miss"}

    def picks(self) -> Picks:
        return self.shown


def _pairing(records: list[ImageRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(subject ids, camera classes) of the records, from their metadata."""
    meta = [dict(record.meta) for record in records]
    return np.array([m["subject_id"] for m in meta], dtype=np.int64), np.array([m["camera_class"] for m in meta], dtype=np.int64)


def work(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    """The test images as they are; a dataset without subject pairs is refused before any extraction."""
    tests = [record for record in dataset.listing.records if record.split == "test"]
    pairable = [record for record in tests if {"subject_id", "camera_class"} <= {key for key, value in record.meta if value is not None}]
    if not pairable:
        raise PairCamsDataError(f"paircams: {dataset.key} has no test images with a subject id and a camera class; "
                                "use a PairCams-like dataset (paircams, or the offline paircams-sim)")
    if len(pairable) < len(tests):
        raise PairCamsDataError(f"paircams: {len(tests) - len(pairable)} of the {len(tests)} test images of {dataset.key} lack a "
                                "subject id or a camera class; every test image must belong to a pair")
    pair_rows(*_pairing(pairable))
    unit = "subject" if dataset.unit_name in ("image", "subject") else dataset.unit_name
    return Work(results.condition(processing=PROCESSING), (PROCESSING,), ("test",), inference(options, dataset),
                unit=f"{unit}: its queries, and its images as distractors of the others")


def measure(inputs: Inputs) -> PairCamsOutcome:
    """recall@1 of both collections and directions, and the gallery's queries."""
    test = inputs.vectors["test"]
    listed = {record.image_id: record for record in inputs.dataset.listing.records if record.split == "test"}
    records = [listed[image_id] for image_id in test.image_ids]
    subjects, cameras = _pairing(records)
    sides = pair_rows(subjects, cameras)
    unit = normalise(test.vectors[PROCESSING])
    recall = recall_of(unit, sides)
    shown = picks(unit, sides, recall, records, subjects, cameras, inputs.encoder)
    resampling: bootstrap.Resampling | None = inputs.settings
    if resampling is None:
        return PairCamsOutcome(recall, shown)
    names = inputs.dataset.units(test.image_ids[sides[0]]) if inputs.dataset.unit_name not in ("image", "subject") else None
    codes = measures.unit_codes(names, len(sides[0]))
    gap = measures.paircams_gap(unit[sides[0]], unit[sides[1]], units=codes, permutations=resampling.permutations,
                                resampling=bootstrap.Resampling(0))
    return PairCamsOutcome(recall, shown, codes, gap)


TASK = TaskSpec(
    name=NAME,
    description="PairCams near-duplicate retrieval: recall@1 with same- vs different-camera distractors (paper §8)",
    work=work,
    measure=measure,
    columns=(
        Column("same", "recall_at_1.same"),
        Column("different", "recall_at_1.different"),
        Column("same−diff", "gap_same_minus_different", interval=True, follow_up="SPD", absolute=True),
        Column("same dslr", "recall_at_1.same_dslr_compact"),
        Column("same phone", "recall_at_1.same_phone"),
        Column("diff dslr", "recall_at_1.different_dslr_compact"),
        Column("diff phone", "recall_at_1.different_phone"),
        Column("chance", "chance"),
    ),
    options=(BOOTSTRAP, PERMUTATIONS),
    default_dataset="paircams-sim",
    trace=Trace("diff−same", GAP, sign=-1.0, words="different − same recall"),
    view="bench.report.paircams",
)
