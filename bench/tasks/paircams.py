"""PairCams near-duplicate retrieval (docs/protocol.md#paircams): does a query find the same subject shot by
the other camera class, when the distractors share the query's camera class ("same") or the
target's ("different")?

Works on any dataset whose rows carry `subject_id` and a binary `camera_class` (0 DSLR/compact,
1 phone), each subject shot exactly once per class: `paircams` and the offline `paircams-sim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from bench import bootstrap, data, plots, results
from bench.data import ImageRecord
from bench.encoders.spec import EncoderSpec
from bench.errors import BenchError
from bench.gallery import Entry, Gallery, Shot, Strip, ordinal, pick
from bench.store import Store, vector_matrix
from bench.tasks.cells import Computed, run_cells
from bench.tasks.options import BOOTSTRAP, resampling
from bench.tasks.request import RunRequest
from bench.tasks.spec import Column, TaskSpec, Trace
from bench.vectors import normalise

NAME = "paircams"
PROCESSING = "original"  # the files as they are: the traces under test come from the cameras
DIRECTIONS = ("dslr_compact", "phone")  # query camera class 0, 1
QUERY_BLOCK = 1024  # queries per score block: memory stays at block x collection
CAMERA_NAMES = ("DSLR/compact", "phone")  # camera class 0, 1 as a reader knows them
GALLERY_QUERIES = 3  # queries shown per encoder in the report
GALLERY_TOP = 5  # candidates shown per collection
GALLERY_SEED = 0


class PairCamsDataError(BenchError, ValueError):
    """The dataset's rows cannot be paired as PairCams needs."""


@dataclass(frozen=True)
class PairRecall:
    """Per query direction and subject, whether the target came first, in both collections."""

    same_hits: dict[str, np.ndarray]  # direction -> (pairs,) bool; distractors: the query's camera class
    different_hits: dict[str, np.ndarray]  # distractors: the target's camera class

    @property
    def pairs(self) -> int:
        return len(next(iter(self.same_hits.values())))

    @property
    def same(self) -> dict[str, float]:
        return {direction: 100.0 * float(np.mean(hits)) for direction, hits in self.same_hits.items()}

    @property
    def different(self) -> dict[str, float]:
        return {direction: 100.0 * float(np.mean(hits)) for direction, hits in self.different_hits.items()}

    def per_subject(self) -> dict[str, np.ndarray]:
        """Every reported recall and the gap per subject, in %: a subject's two images are the
        queries of the two directions, so its mean over subjects is the reported number."""
        same = 100.0 * np.mean(list(self.same_hits.values()), axis=0)
        different = 100.0 * np.mean(list(self.different_hits.values()), axis=0)
        return {
            "recall_at_1.same": same, "recall_at_1.different": different, "gap_same_minus_different": same - different,
            **{f"recall_at_1.same_{d}": 100.0 * hits.astype(float) for d, hits in self.same_hits.items()},
            **{f"recall_at_1.different_{d}": 100.0 * hits.astype(float) for d, hits in self.different_hits.items()},
        }

    def metrics(self, resampling: bootstrap.Resampling = bootstrap.Resampling(0)) -> dict[str, object]:
        resampled = bootstrap.resample_means(self.per_subject(), resampling)
        same = float(np.mean(list(self.same.values())))
        different = float(np.mean(list(self.different.values())))
        return {
            "recall_at_1": {"same": same, "different": different, **{f"same_{d}": v for d, v in self.same.items()},
                            **{f"different_{d}": v for d, v in self.different.items()}},
            "gap_same_minus_different": same - different,
            "chance": 100.0 / self.pairs,  # one target among `pairs` candidates in either collection
            results.INTERVALS: resampled.intervals(),
            results.RESAMPLES: resampled.kept("gap_same_minus_different"),
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


def _hits(queries: np.ndarray, own: np.ndarray, partners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query i (= own[i]), whether partners[i] scores strictly above every distractor of the
    "same" collection (own class, i excluded) and of the "different" one (partners, i excluded).
    One product per block scores both collections, so the target's score is the same number in
    both comparisons; a tie with a distractor counts as a miss."""
    same = np.zeros(len(queries), dtype=bool)
    different = np.zeros(len(queries), dtype=bool)
    both = np.concatenate([own, partners])
    count = len(own)
    for start in range(0, len(queries), QUERY_BLOCK):
        stop = min(start + QUERY_BLOCK, len(queries))
        scores = queries[start:stop] @ both.T
        rows = np.arange(stop - start)
        mine = np.arange(start, stop)
        target = scores[rows, count + mine].copy()
        scores[rows, mine] = -np.inf  # the query itself
        scores[rows, count + mine] = -np.inf  # the target, compared separately
        same[start:stop] = target > scores[:, :count].max(axis=1)
        different[start:stop] = target > scores[:, count:].max(axis=1)
    return same, different


def recall_at_1(vectors: np.ndarray, subject_ids: np.ndarray, camera_classes: np.ndarray) -> PairRecall:
    """Both collections, both query directions, on L2-normalised float32 vectors (docs/protocol.md#paircams)."""
    sides = pair_rows(subject_ids, camera_classes)
    unit = normalise(vectors)
    same: dict[str, np.ndarray] = {}
    different: dict[str, np.ndarray] = {}
    for camera, direction in enumerate(DIRECTIONS):
        own, partners = unit[sides[camera]], unit[sides[1 - camera]]
        same[direction], different[direction] = _hits(own, own, partners)
    return PairRecall(same, different)


@dataclass(frozen=True)
class Ranked:
    """A query's best candidates in one collection and where its target stands."""

    rows: np.ndarray  # rows of the input, best first (score desc, then row asc)
    scores: np.ndarray
    target_rank: int  # 1 + distractors scoring at least the target: a tie counts against it, as in recall@1


@dataclass(frozen=True)
class Retrieval:
    """One query of a gallery: its row, its target's row, and both collections' top candidates."""

    query: int
    target: int
    same: Ranked
    different: Ranked


def _ranked(unit: np.ndarray, query: int, target: int, collection: np.ndarray, top: int) -> Ranked:
    scores = unit[collection] @ unit[query]
    order = np.lexsort((collection, -scores))[:top]
    beaten = int(np.sum((scores >= scores[collection == target][0]) & (collection != target)))
    return Ranked(collection[order], scores[order], beaten + 1)


def retrievals(
    vectors: np.ndarray, subject_ids: np.ndarray, camera_classes: np.ndarray, image_ids: Sequence[str],
    *, count: int = GALLERY_QUERIES, top: int = GALLERY_TOP, seed: int = GALLERY_SEED,
) -> list[Retrieval]:
    """`count` queries from both directions in an order fixed by (seed, image id), with a miss of
    the "same" collection among them when there is one, each with its `top` candidates per collection."""
    sides = pair_rows(subject_ids, camera_classes)
    unit = normalise(vectors)
    queries, targets, misses = [], [], []
    for camera in (0, 1):
        own, partners = sides[camera], sides[1 - camera]
        same_hits, _ = _hits(unit[own], unit[own], unit[partners])
        queries += own.tolist()
        targets += partners.tolist()
        misses += (~same_hits).tolist()
    chosen = pick([image_ids[row] for row in queries], count, np.array(misses), seed, "paircams-gallery")
    out = []
    for position in chosen:
        query, target = queries[position], targets[position]
        camera = camera_classes[query]
        same = np.flatnonzero(((camera_classes == camera) & (np.arange(len(unit)) != query)) | (np.arange(len(unit)) == target))
        different = np.flatnonzero(camera_classes != camera)
        out.append(Retrieval(query, target, _ranked(unit, query, target, same, top), _ranked(unit, query, target, different, top)))
    return out


def gallery(
    found: list[Retrieval], records: list[ImageRecord], subject_ids: np.ndarray, camera_classes: np.ndarray,
    size: int, interpolation: str, processing_seed: int,
) -> Gallery:
    """The retrievals as a report gallery; `records` are the rows' images, row for row."""

    def shot(row: int, **placed: Any) -> Shot:
        labels = (f"subject {subject_ids[row]}", CAMERA_NAMES[camera_classes[row]])
        return Shot.of(records[row], PROCESSING, labels, **placed)

    def strip(name: str, title: str, ranked: Ranked, target: int) -> Strip:
        hit = ranked.target_rank == 1
        outcome = "hit: the target is nearest" if hit else f"miss: the target ranks {ordinal(ranked.target_rank)}"
        shots = tuple(shot(int(row), rank=rank, score=float(score), target=bool(row == target))
                      for rank, (row, score) in enumerate(zip(ranked.rows, ranked.scores), start=1))
        return Strip(name, title, outcome, hit, shots)

    entries = []
    for one in found:
        own, other = CAMERA_NAMES[camera_classes[one.query]], CAMERA_NAMES[camera_classes[one.target]]
        entries.append(Entry(shot(one.query), shot(one.target, target=True), (
            strip("same", f"same collection: the distractors are {own} shots, like the query", one.same, one.target),
            strip("different", f"different collection: the distractors are {other} shots, like the target", one.different, one.target),
        )))
    legend = (f"Each query with its target (the same subject shot by the other camera class, green frame) and its "
              f"{GALLERY_TOP} nearest images in each collection, best first. When the nearest image in the same collection "
              "is another subject shot by the query's camera class, the embedding is matching cameras rather than content.")
    return Gallery(size, interpolation, processing_seed, legend, tuple(entries))


def execute(request: RunRequest) -> list[Path]:
    """Extract the dataset as it is, compute recall@1 per encoder, skip cells already stored."""
    dataset = data.resolve(request.dataset, request.dataset_options)
    resampled = resampling(request, "subject")
    tests = [record for record in dataset.listing.records if record.split == "test"]
    pairable = [record for record in tests if {"subject_id", "camera_class"} <= {key for key, value in record.meta if value is not None}]
    if not pairable:
        raise PairCamsDataError(f"paircams: {dataset.key} has no test images with a subject id and a camera class; "
                                "use a PairCams-like dataset (paircams --root DIR, or the offline paircams-sim)")
    pair_rows(np.array([dict(r.meta)["subject_id"] for r in pairable]), np.array([dict(r.meta)["camera_class"] for r in pairable]))

    records = {record.image_id: record for record in tests}

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        if not store.has_table(key, spec.name):
            raise PairCamsDataError(f"paircams: {key} has no test images; is --dataset a PairCams-like dataset (paircams, paircams-sim)?")
        rows = store.scan(
            key, spec.name, where=f"split = 'test' AND processing = '{PROCESSING}'",
            columns=["image_id", "subject_id", "camera_class", "vector"],
        )
        subjects = np.asarray(rows.column("subject_id").to_numpy(zero_copy_only=False), dtype=float)
        cameras = np.asarray(rows.column("camera_class").to_numpy(zero_copy_only=False), dtype=float)
        if rows.num_rows == 0 or np.isnan(subjects).any() or np.isnan(cameras).any():
            raise PairCamsDataError(f"paircams: {key} rows lack subject_id or camera_class; use paircams or paircams-sim")
        outcome = recall_at_1(vector_matrix(rows), subjects.astype(np.int64), cameras.astype(np.int64))
        shown = _gallery(spec, store, key, rows, records)
        return Computed(
            metric="recall_at_1",
            metrics=outcome.metrics(resampled),
            detail={"pairs": outcome.pairs, "same": outcome.same, "different": outcome.different, "gallery": shown.as_json()},
            provenance={"tie_rule": "a distractor scoring equal to the target counts as a miss"},
        )

    return run_cells(
        request, task=NAME, condition=results.condition(processing=PROCESSING),
        processings=[PROCESSING], splits=("test",), compute=compute, dataset=dataset,
        resampling=resampled,
    )


def _gallery(spec: EncoderSpec, store: Store, key: str, rows: pa.Table, records: dict[str, ImageRecord]) -> Gallery:
    """The cell's gallery from its scanned rows (image_id, subject_id, camera_class, vector)."""
    subjects = rows.column("subject_id").to_numpy(zero_copy_only=False).astype(np.int64)
    cameras = rows.column("camera_class").to_numpy(zero_copy_only=False).astype(np.int64)
    ids = rows.column("image_id").to_pylist()
    found = retrievals(vector_matrix(rows), subjects, cameras, ids)
    seed = int(store.fingerprint(key, spec.name).get("processing_seed", 0))
    return gallery(found, [records[image_id] for image_id in ids], subjects, cameras, spec.input_size, spec.interpolation, seed)


def figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[plots.Figure]:
    """Same against different recall@1, one point per encoder, with the y = x line; and the gap with its interval."""
    figure, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.plot([0, 100], [0, 100], color="black", linewidth=0.8, linestyle="--", label="y = x")
    for cell in cells:
        x = results.metric(cell, "recall_at_1.different") or 0.0
        y = results.metric(cell, "recall_at_1.same") or 0.0
        ax.scatter([x], [y], color=plots.colour(cell), s=30, zorder=3)
        ax.annotate(cell["encoder"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("recall@1, different collection (%)")
    ax.set_ylabel("recall@1, same collection (%)")
    plots.family_legend(ax, cells)
    scatter = plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('paircams', dataset, condition)}.png"),
                           f"PairCams on {dataset}: each point is an encoder. Below the y = x line, distractors from the query's own "
                           "camera class hurt retrieval more than distractors from the target's: the embedding encodes the camera.")
    figure = plots.interval_chart(plt, results.ordered(task.primary, cells), [("gap_same_minus_different", "same−diff")],
                                  "recall@1, same − different collection (points)")
    gap = plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('paircams-gap', dataset, condition)}.png"),
                       f"PairCams on {dataset}: same − different recall@1 per encoder with its 95 % bootstrap interval over subjects. "
                       "Left of 0: the camera trace outweighs the content; a filled point's interval excludes 0.")
    return [scatter, gap]


TASK = TaskSpec(
    name=NAME,
    description="PairCams near-duplicate retrieval: recall@1 with same- vs different-camera distractors (paper §8)",
    execute=execute,
    columns=(
        Column("same", "recall_at_1.same"),
        Column("different", "recall_at_1.different"),
        Column("same−diff", "gap_same_minus_different", interval=True),
        Column("same dslr", "recall_at_1.same_dslr_compact"),
        Column("same phone", "recall_at_1.same_phone"),
        Column("diff dslr", "recall_at_1.different_dslr_compact"),
        Column("diff phone", "recall_at_1.different_phone"),
        Column("chance", "chance"),
    ),
    rule=lambda cells: (
        "recall_at_1 (%): a query's top-1 must be its subject's image from the other camera class. same: "
        "distractors are the query's own camera class; different: the target's class. same / different "
        "average the two query directions (dslr = DSLR/compact queries, phone = phone queries). A distractor "
        "tied with the target counts as a miss. " + bootstrap.rule("subject", cells) + " A subject's two images (one query per "
        "direction) are drawn together."
    ),
    options=(BOOTSTRAP,),
    figures=figures,
    default_dataset="paircams-sim",
    trace=Trace("diff−same", "gap_same_minus_different", sign=-1.0),
)
