"""Extraction decodes each file once for all its processings, and never serves a stale decode."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from bench import data, encoders, extraction
from bench.data import record
from bench.data.record import DatasetOptions, ImageRecord
from bench.store import Store


def test_each_file_is_decoded_once_for_all_its_processings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            folder = tmp_path / "photos" / split / name
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / "a.jpg", quality=90)
    decoded: list[str] = []
    original = record._decode_rgb

    def counting(path: str, orient: bool = False) -> Image.Image:
        decoded.append(path)
        return original(path, orient)

    monkeypatch.setattr(record, "_decode_rgb", counting)
    record._decode_rgb_cached.cache_clear()
    summary = extraction.extract(
        data.resolve("imagefolder", DatasetOptions(root=tmp_path / "photos")), encoders.get("effnet/lite0.random"),
        ("jpeg75_420", "sharpen2", "resize_half"), Store(tmp_path / "embeddings"), console=Console(quiet=True),
    )["effnet/lite0.random"]
    assert summary.rows_written == 4 * 3
    assert sorted(decoded) == sorted(set(decoded)) and len(decoded) == 4


def test_a_file_rewritten_in_place_is_decoded_again(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    item = ImageRecord("photo", "train", 0, "x", str(path))
    assert item.load().getpixel((0, 0)) == (255, 0, 0)
    Image.new("RGB", (9, 9), (0, 0, 255)).save(path)
    os.utime(path, ns=(1, 1))  # even with an older timestamp
    assert item.load().getpixel((0, 0)) == (0, 0, 255)
    loaded = item.load()
    loaded.putpixel((0, 0), (0, 255, 0))  # callers get a copy: the cached decode stays as it was
    assert item.load().getpixel((0, 0)) == (0, 0, 255)
