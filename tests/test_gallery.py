"""Galleries: which queries a cell records, what their neighbours are, and how the report draws them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import data, encoders, results, runner, tasks
from bench.data.record import ImageRecord
from bench.picks import Picks, Shot, pick
from bench.report import galleries, writer
from bench.report.captions import ordinal
from bench.tasks import knn_influence, paircams
from bench.vectors import SplitVectors
from tests.test_paircams import reference, shuffled_pairs


def test_pick_is_a_function_of_the_ids_and_shows_a_miss_when_there_is_one() -> None:
    ids = [f"img{i}" for i in range(50)]
    none = np.zeros(50, dtype=bool)
    chosen = pick(ids, 3, none, 0, "test")
    assert chosen == pick(ids, 3, none, 0, "test") and len(set(chosen)) == 3
    order = np.random.default_rng(1).permutation(50)
    assert {ids[i] for i in chosen} == {ids[order[i]] for i in pick([ids[i] for i in order], 3, none, 0, "test")}
    assert pick(ids, 3, none, 1, "test") != chosen  # another seed, another draw
    wanted = none.copy()
    wanted[[7, 31]] = True
    with_miss = pick(ids, 3, wanted, 0, "test")
    assert with_miss[:2] == chosen[:2] and with_miss[2] in (7, 31)
    assert pick(ids, 3, np.ones(50, dtype=bool), 0, "test") == chosen  # already one among them: nothing replaced
    ranks = (1, 2, 3, 4, 11, 12, 13, 21, 22, 111)
    assert [ordinal(n) for n in ranks] == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "111th"]


def brute_ranking(unit: np.ndarray, query: int, members: list[int], top: int) -> list[int]:
    return sorted(members, key=lambda row: (-float(unit[query] @ unit[row]), row))[:top]


SPEC = encoders.get("effnet/lite0.random")


@pytest.mark.parametrize("noise,camera_shift", [(0.05, 0.0), (1.0, 0.0), (1.0, 3.0)])  # no miss, some, all
def test_paircams_picks_match_a_plain_ranking_and_include_a_miss(noise: float, camera_shift: float) -> None:
    vectors, subjects, cameras = shuffled_pairs(np.random.default_rng(3), 40, 16, noise, camera_shift)
    ids = [f"s{s}/c{c}" for s, c in zip(subjects, cameras)]
    records = [ImageRecord(image_id, "test", 0, "", f"/photos/{image_id}.jpg") for image_id in ids]
    unit = paircams.normalise(vectors)
    sides = paircams.pair_rows(subjects, cameras)
    recall = paircams.recall_of(unit, sides)
    shown = paircams.picks(unit, sides, recall, records, subjects, cameras, SPEC)
    assert shown == paircams.picks(unit, sides, recall, records, subjects, cameras, SPEC)
    assert Picks.from_json(shown.as_json()) == shown  # what the cell stores is what the report reads
    same_misses = reference(vectors, subjects, cameras)["same"]
    for entry in shown.entries:
        query, target = ids.index(entry.query.image_id), ids.index(entry.target.image_id)
        camera = cameras[query]
        assert subjects[target] == subjects[query] and cameras[target] != camera and entry.target.target
        own = [row for row in range(len(ids)) if cameras[row] == camera and row != query] + [target]
        other = [row for row in range(len(ids)) if cameras[row] != camera]
        for strip, members in zip(entry.strips, (own, other)):
            assert [ids.index(shot.image_id) for shot in strip.shots] == brute_ranking(unit, query, members, paircams.GALLERY_TOP)
            assert [shot.target for shot in strip.shots] == [ids.index(shot.image_id) == target for shot in strip.shots]
            target_score = unit[query] @ unit[target]
            rank = 1 + sum(unit[query] @ unit[row] >= target_score for row in members if row != target)
            assert strip.fact == str(rank) and strip.hit == (rank == 1)
    any_miss = min(same_misses.values()) < 100.0
    assert any(not entry.strips[0].hit for entry in shown.entries) == any_miss
    assert len(shown.entries) == paircams.GALLERY_QUERIES


def demo_records(name: str) -> list:
    return data.resolve(name).listing.records


def knn_setup(rng: np.random.Generator):
    """demo-mini's records with synthetic vectors: a class signal plus a processing signal strong
    enough that some votes flip between pos-same and neg-same."""
    records = demo_records("demo-mini")
    classes = ("jpeg75_420", "jpeg95_444")
    centres, marks = rng.normal(size=(11, 12)), rng.normal(size=(2, 12)) * 1.5

    def split(name: str) -> SplitVectors:
        chosen = sorted((r for r in records if r.split == name), key=lambda r: r.image_id)
        labels = np.array([r.label for r in chosen])
        noise = rng.normal(size=(len(chosen), 12))
        return SplitVectors(np.array([r.image_id for r in chosen]), labels,
                            {c: (centres[labels] + marks[j] + noise).astype(np.float32) for j, c in enumerate(classes)})

    return records, classes, split("train"), split("val")


def test_knn_gallery_shows_the_merged_neighbours_and_a_flipped_vote() -> None:
    records, classes, train, val = knn_setup(np.random.default_rng(0))
    outcome = knn_influence.run(train, val, classes, k=3, seeds=(0,), backend="faiss-cpu", keep=knn_influence.gallery_triples(classes))
    by_key = {(r.split, r.image_id): r for r in records}
    shown = knn_influence.picks(outcome, train, val, by_key, SPEC)
    assert shown == knn_influence.picks(outcome, train, val, by_key, SPEC)
    assert Picks.from_json(shown.as_json()) == shown  # what the cell stores is what the report reads
    pos_same, neg_same = knn_influence.gallery_triples(classes)
    flips = outcome.triple_hits[pos_same] != outcome.triple_hits[neg_same]
    assert flips.any(), "the synthetic data should make some votes flip"
    assert any(entry.strips[0].hit != entry.strips[1].hit for entry in shown.entries)
    ids = list(val.image_ids)
    units = {name: vectors / np.linalg.norm(vectors, axis=1, keepdims=True) for name, vectors in train.vectors.items()}
    for entry in shown.entries:
        query = ids.index(entry.query.image_id)
        assert entry.query.processing == pos_same[0]
        probe = val.vectors[pos_same[0]][query] / np.linalg.norm(val.vectors[pos_same[0]][query])
        for strip, (_, p, n) in zip(entry.strips, (pos_same, neg_same)):
            version = [p if label == val.labels[query] else n for label in train.labels]
            scores = [float(units[version[row]][row] @ probe) for row in range(len(train.labels))]
            want = sorted(range(len(scores)), key=lambda row: (-scores[row], row))[:3]
            assert [shot.image_id for shot in strip.shots] == [train.image_ids[row] for row in want]
            assert [shot.processing for shot in strip.shots] == [version[row] for row in want]
            assert [shot.target for shot in strip.shots] == [bool(train.labels[row] == val.labels[query]) for row in want]
            assert [shot.rank for shot in strip.shots] == [1, 2, 3]
            assert strip.hit == bool(outcome.triple_hits[(pos_same[0], p, n)][query])


def knn_cell(results_dir: Path, encoder: str, seed: int, break_path: bool = False) -> None:
    records, classes, train, val = knn_setup(np.random.default_rng(seed))
    outcome = knn_influence.run(train, val, classes, k=3, seeds=(0,), backend="faiss-cpu", keep=knn_influence.gallery_triples(classes))
    shown = knn_influence.picks(outcome, train, val, {(r.split, r.image_id): r for r in records}, SPEC)
    if break_path:  # the first neighbour's source file is gone
        entry = shown.entries[0]
        strip = entry.strips[0]
        gone = dataclasses.replace(strip.shots[0], path="/nonexistent/photo.png")
        strip = dataclasses.replace(strip, shots=(gone, *strip.shots[1:]))
        shown = dataclasses.replace(shown, entries=(dataclasses.replace(entry, strips=(strip, *entry.strips[1:])), *shown.entries[1:]))
    settings = knn_influence.KnnSettings(classes, 3, (0,), "versioned", "faiss-cpu")
    key = results.CellKey("knn-influence", "demo-mini", encoder, "group=toy,k=3,seeds=1")
    cell, _ = runner.assemble(key, "sup", knn_influence.KnnOutcome(outcome, settings, (len(train.image_ids), len(val.image_ids)), shown),
                              None, tasks.get("knn-influence"))
    results.write(cell, results_dir)


def test_report_draws_each_gallery_image_beside_the_page_and_a_placeholder_for_a_missing_file(tmp_path: Path) -> None:
    knn_cell(tmp_path / "results", "toy/a", 0, break_path=True)
    knn_cell(tmp_path / "results", "toy/b", 1)
    warnings: list[str] = []
    page, markdown, _ = writer.write(tmp_path / "results", tmp_path / "out", "toy", warnings.append)
    html_text, markdown_text = page.read_text(), markdown.read_text()
    drawn = sorted((tmp_path / "out" / galleries.FOLDER).glob("*.png"))
    assert drawn, "no thumbnails were written"
    for path in drawn:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (galleries.PIXELS, galleries.PIXELS)
    referenced = set(re.findall(r'src="(gallery/[^"]+)"', html_text))
    assert referenced == {f"{galleries.FOLDER}/{path.name}" for path in drawn}  # relative, so the page opens from disk
    assert all(f"]({name})" in markdown_text for name in referenced)
    assert "no image: No such file or directory<br>photo.png" in html_text
    assert "(no image: /nonexistent/photo.png: No such file or directory)" in markdown_text
    assert len(warnings) == 1 and "/nonexistent/photo.png" in warnings[0]
    assert "toy/a" in html_text and "toy/b" in html_text and "vote:" in html_text


def test_a_thumbnail_shows_the_processing_the_encoder_saw() -> None:
    record = demo_records("demo-mini")[0]
    view = Picks(224, "bicubic", ())
    plain = np.asarray(galleries.draw(Shot.of(record, "original", ("x",)), view), dtype=np.int16)
    masked = np.asarray(galleries.draw(Shot.of(record, "mask75", ("x",)), view), dtype=np.int16)
    squeezed = np.asarray(galleries.draw(Shot.of(record, "jpeg75_420", ("x",)), view), dtype=np.int16)
    centre = slice(galleries.PIXELS // 2 - 10, galleries.PIXELS // 2 + 10)
    assert masked[centre, centre].max() == 0 and plain[centre, centre].max() > 0  # the mask is drawn after the crop
    assert masked[:3, :3].std() > 0  # the frame outside the mask keeps the photo
    assert 0 < np.abs(squeezed - plain).mean() < 20  # JPEG: the same picture, slightly changed
