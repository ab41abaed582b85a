"""Bad images never crash a run or yield wrong rows: odd modes are converted, broken files rejected."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import data, encoders, extraction
from bench.data import DatasetOptions
from bench.extraction import ExtractionSettings
from bench.store import Store

SIZE = (40, 40)  # 1,600 pixels: below the lowered bomb limit used in the test


def _write_good(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)
    paths = {name: root / split / cls / f"{name}.{ext}" for name, split, cls, ext in (
        ("rgb", "train", "a", "jpg"), ("gray", "train", "a", "png"), ("palette", "train", "b", "png"),
        ("rgba", "val", "a", "png"), ("cmyk", "val", "b", "jpg"), ("sixteen", "val", "b", "png"),
    )}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(paths["rgb"])
    Image.fromarray(pixels[..., 0], "L").save(paths["gray"])
    Image.fromarray(pixels, "RGB").convert("P", palette=Image.Palette.ADAPTIVE).save(paths["palette"])
    Image.fromarray(np.dstack([pixels, pixels[..., :1]]), "RGBA").save(paths["rgba"])
    Image.fromarray(pixels, "RGB").convert("CMYK").save(paths["cmyk"])
    Image.fromarray(np.full(SIZE, 40000, dtype=np.uint16)).save(paths["sixteen"])  # 16-bit grayscale PNG
    return paths


def _write_bad(root: Path) -> dict[str, Path]:
    folder = root / "train" / "b"
    buffer = io.BytesIO()
    Image.new("RGB", SIZE, (1, 2, 3)).save(buffer, format="JPEG")
    paths = {"truncated": folder / "truncated.jpg", "garbage": folder / "garbage.jpg", "bomb": folder / "bomb.png"}
    paths["truncated"].write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    paths["garbage"].write_bytes(np.random.default_rng(1).bytes(3000))
    Image.new("RGB", (100, 100)).save(paths["bomb"])  # 10,000 pixels: a bomb under the lowered limit
    return paths


def test_odd_modes_are_converted_to_meaningful_rgb(tmp_path: Path) -> None:
    paths = _write_good(tmp_path)
    records = {Path(r.path).stem: r for r in data.get("imagefolder").list(DatasetOptions(root=tmp_path)).records}
    for name in paths:
        image = records[name].load()
        assert image.mode == "RGB" and image.size == SIZE, name
    assert np.asarray(records["sixteen"].load())[0, 0].tolist() == [40000 >> 8] * 3  # scaled, not clipped to 255
    source = np.asarray(Image.open(paths["rgba"]))[..., :3]
    np.testing.assert_array_equal(np.asarray(records["rgba"].load()), source)  # alpha dropped, colours kept


def test_broken_files_are_rejected_with_reasons_and_good_ones_written_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # Pillow refuses images over twice this
    root, home = tmp_path / "images", tmp_path / "home"
    good, bad = _write_good(root), _write_bad(root)
    store = Store(home / "embeddings")
    run = dict(settings=ExtractionSettings(workers=0, batch_size=4), rejects_dir=home / "rejects")
    spec = encoders.get("effnet/lite0.random")
    dataset = data.resolve("imagefolder", DatasetOptions(root=root))
    summary = extraction.extract(dataset, spec, ["jpeg95_444"], store, **run)[spec.name]

    reasons = {Path(reject["path"]).stem: reject["reason"] for reject in summary.rejects}
    assert set(reasons) == set(bad)
    assert "truncated" in reasons["truncated"].lower()
    assert "DecompressionBomb" in reasons["bomb"]
    assert "cannot identify" in reasons["garbage"].lower()
    (rejects_file,) = (home / "rejects").glob("imagefolder.images-*__effnet--lite0.random.jsonl")
    lines = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert {Path(line["path"]).stem for line in lines} == set(bad)

    stored = store.scan(dataset.key, spec.name, columns=["image_id"]).column("image_id").to_pylist()
    assert sorted(stored) == sorted(str(p.relative_to(root).as_posix()) for p in good.values())
    assert summary.rows_written == len(good) and summary.images == len(good)

    again = extraction.extract(data.resolve("imagefolder", DatasetOptions(root=root)), spec, ["jpeg95_444"], store, **run)[spec.name]
    assert again.rows_written == 0 and again.rows_skipped == len(good) and len(again.rejects) == len(bad)
    assert store.count(dataset.key, spec.name) == len(good)
