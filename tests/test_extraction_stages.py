"""The four extraction stages on their own: plan, prepare, embed, commit; and one pass feeding
several encoders gives each the vectors it would get alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from bench import data, encoders, extraction, processing
from bench.data import ImageRecord
from bench.encoders.preprocess import paper_preprocess
from bench.extraction.commit import COMMIT_ROWS, Committer, Embedded, row
from bench.extraction.embed import Embedder
from bench.extraction.fingerprint import fingerprint
from bench.extraction.plan import make_plan
from bench.extraction.prepare import InputShape, input_shape_of, prepare
from bench.store import FingerprintMismatchError, Store

RANDOM = "effnet/lite0.random"


@pytest.fixture(scope="module")
def mini() -> data.ResolvedDataset:
    return data.resolve("demo-mini")


def _spec(**changes: object):
    return dataclasses.replace(encoders.get(RANDOM), **changes)


def test_plan_lists_only_what_each_table_lacks_image_major(tmp_path: Path, mini: data.ResolvedDataset) -> None:
    store = Store(tmp_path / "embeddings")
    records = [r for r in mini.listing.records if r.split == "val"][:3]
    subset = dataclasses.replace(mini, listing=data.Listing(records))
    first = _spec()
    second = _spec(name="effnet/lite0.random-seed1", init_seed=1)
    ops = ("jpeg75_420", "jpeg95_444")
    schema = store.prepare(mini.key, first.name, first.embed_dim, fingerprint(first, "fp32", subset.identity))
    done = records[1]
    store.write(mini.key, first.name, _arrow([(done, processing.get("jpeg95_444"))], schema))

    plan = make_plan(subset, [first, second], ops, store, splits=("val",))
    assert [(item.record.image_id, item.op.name) for item in plan.items] == [(r.image_id, op) for r in records for op in ops]
    by_key = {(item.record.image_id, item.op.name): item.targets for item in plan.items}
    assert by_key[done.image_id, "jpeg95_444"] == (1,)  # stored for the first encoder only
    assert all(targets == (0, 1) for key, targets in by_key.items() if key != (done.image_id, "jpeg95_444"))
    assert plan.stored == {first.name: 1, second.name: 0}
    assert plan.missing(0) == 5 and plan.missing(1) == 6

    assert plan.since == {first.name: store.version(mini.key, first.name), second.name: 1}
    with pytest.raises(FingerprintMismatchError, match="--rebuild"):  # refused before any work
        make_plan(subset, [first], ops, store, splits=("val",), precision="bf16")
    rebuilt = make_plan(subset, [first], ops, store, splits=("val",), rebuild=True)
    assert rebuilt.missing(0) == 6 and not store.has_table(mini.key, first.name)


def _arrow(pairs, schema):
    from bench.store import rows_to_arrow

    return rows_to_arrow([row(r, op) for r, op in pairs], np.zeros((len(pairs), schema.field("vector").type.list_size), np.float32), schema)


def test_prepare_is_pure_and_matches_torchvision_to_the_bit(mini: data.ResolvedDataset) -> None:
    record = mini.listing.records[0]
    spec = _spec()
    op = processing.get("jpeg75_420")
    small, large = input_shape_of(spec), InputShape(160, "bilinear")
    first = prepare(record, op, [small, large]).pixels
    again = prepare(record, op, [large, small]).pixels
    assert set(first) == {small, large} and first[large].shape == (3, 160, 160) and first[small].dtype == torch.uint8
    assert all(torch.equal(first[v], again[v]) for v in first)
    # scaled and normalised on the device, the pixels are what ToTensor + Normalize give
    image = processing.apply(op, record.load(), seed=0, image_id=record.image_id)
    expected = paper_preprocess(spec)(image)
    embedder = Embedder(encoders.load(spec), torch.device("cpu"))
    assert torch.equal(embedder.inputs(first[small][None])[0], expected)


def test_masking_runs_after_each_views_crop(mini: data.ResolvedDataset) -> None:
    record = mini.listing.records[0]
    pixels = prepare(record, processing.get("mask95"), [InputShape(64, "bicubic"), InputShape(96, "bicubic")]).pixels
    for view, tensor in pixels.items():
        box = processing.mask_box(view.size, 0.95)
        assert tensor[:, box[1]:box[3], box[0]:box[2]].max() == 0  # the centred box is black in every view
        assert tensor.float().mean() > 0


def test_embedder_equals_the_model_on_torchvision_tensors(mini: data.ResolvedDataset) -> None:
    spec = _spec()
    loaded = encoders.load(spec)
    records = mini.listing.records[:3]
    op = processing.get("jpeg95_444")
    pixels = torch.stack([prepare(r, op, [input_shape_of(spec)]).pixels[input_shape_of(spec)] for r in records])
    expected = torch.stack([loaded.preprocess(processing.apply(op, r.load(), seed=0, image_id=r.image_id)) for r in records])
    with torch.inference_mode():
        reference = loaded.model(expected).numpy()
    assert np.array_equal(Embedder(loaded, torch.device("cpu"))(pixels), reference)


def test_committer_flushes_by_rows_and_time_and_upserts(tmp_path: Path, mini: data.ResolvedDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "embeddings")
    spec = _spec()
    schema = store.prepare("toy", spec.name, spec.embed_dim, {"v": 1})
    op = processing.get("jpeg95_444")
    records = mini.listing.records[:4]
    vectors = np.ones((2, spec.embed_dim), np.float32)
    committer = Committer(store, "toy", spec.name, schema, commit_seconds=3600)

    def share(chosen: list, scale: float = 1.0) -> Embedded:
        return Embedded(len(chosen), [row(r, op) for r in chosen], scale * vectors)

    committer.add(share(records[:2]))
    assert committer.pieces == 0 and store.count("toy", spec.name) == 0  # neither clock nor size says commit
    monkeypatch.setattr("bench.extraction.commit.COMMIT_ROWS", 3)
    committer.add(share(records[2:4]))
    assert committer.pieces == 1 and store.count("toy", spec.name) == 4
    committer.add(share(records[:2], 2.0))  # the same keys again: updated, not added
    committer.close()
    assert store.count("toy", spec.name) == 4 and committer.written == 6
    assert COMMIT_ROWS == 4096


def test_one_pass_feeds_several_encoders_as_separate_passes_would(tmp_path: Path) -> None:
    dataset = data.resolve("demo-mini")
    dataset = dataclasses.replace(dataset, listing=data.Listing([r for r in dataset.listing.records if r.split == "val"][:4]))
    first, second = encoders.get(RANDOM), encoders.get("effnet/lite0.in1k")
    ops = ("jpeg75_420", "mask50")
    quiet = Console(quiet=True)
    together = Store(tmp_path / "together")
    summaries = extraction.extract(dataset, [first, second], ops, together, splits=("val",), console=quiet)
    assert {name: s.rows_written for name, s in summaries.items()} == {first.name: 8, second.name: 8}
    for spec in (first, second):
        alone = Store(tmp_path / f"alone-{spec.name.replace('/', '-')}")
        extraction.extract(dataset, spec, ops, alone, splits=("val",), console=quiet)
        for op in ops:
            a = together.split_vectors(dataset.key, spec.name, "val", [op]).vectors[op]
            b = alone.split_vectors(dataset.key, spec.name, "val", [op]).vectors[op]
            assert np.array_equal(a, b), (spec.name, op)


def test_a_record_that_fails_to_decode_is_rejected_for_every_encoder(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    dataset = data.ResolvedDataset(data.get("imagefolder"), data.DatasetOptions(root=tmp_path),
                                   data.Listing([ImageRecord("broken.jpg", "val", 0, "x", str(broken))]))
    summaries = extraction.extract(dataset, [encoders.get(RANDOM), encoders.get("effnet/lite0.in1k")], ["jpeg95_444"],
                                   Store(tmp_path / "e"), splits=("val",), console=Console(quiet=True))
    for summary in summaries.values():
        assert summary.rows_written == 0 and [r["image_id"] for r in summary.rejects] == ["broken.jpg"]
