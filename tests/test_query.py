"""`bench query`: metadata filters, nearest neighbours of an image, helpful errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import skimage

from bench import data, encoders, extraction
from bench.query import QueryError, like, select
from bench.store import MissingEmbeddingsError, Store
from tests.conftest import PROJECT, bench_command, run_bench

DATASET, ENCODER = "demo-mini", "effnet/lite0.in1k"
COFFEE = Path(skimage.__file__).parent / "data" / "coffee.png"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("query-home")
    extraction.extract(data.resolve(DATASET), encoders.get(ENCODER), ["jpeg95_444", "jpeg75_420"], Store(root / "embeddings"))
    return root


def test_filter_returns_exactly_the_matching_rows(home: Path) -> None:
    found = select(Store(home / "embeddings"), DATASET, ENCODER, "processing = 'jpeg75_420' AND label = 2 AND split = 'train'")
    assert found.num_rows == 4
    assert set(found.column("label_name").to_pylist()) == {"coffee"}
    assert "vector" not in found.column_names
    everything = select(Store(home / "embeddings"), DATASET, ENCODER, None, ["image_id"])
    assert everything.num_rows == 11 * 6 * 2


def test_like_finds_crops_of_the_same_photo_under_the_filter(home: Path) -> None:
    found = like(Store(home / "embeddings"), DATASET, ENCODER, COFFEE, 3, where="processing = 'jpeg95_444'", columns=["image_id", "label_name", "processing"])
    assert found.column("label_name").to_pylist() == ["coffee"] * 3
    assert set(found.column("processing").to_pylist()) == {"jpeg95_444"}
    scores = found.column("score").to_pylist()
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0


def test_bad_filters_and_columns_say_why_and_list_valid_columns(home: Path) -> None:
    with pytest.raises(QueryError, match="labl") as caught:
        select(Store(home / "embeddings"), DATASET, ENCODER, "labl = 3")
    assert "camera_make" in str(caught.value)
    with pytest.raises(QueryError, match="unknown column"):
        select(Store(home / "embeddings"), DATASET, ENCODER, None, ["nope"])
    with pytest.raises(MissingEmbeddingsError, match="extract"):
        select(Store(home / "embeddings"), "demo", ENCODER, None)


def test_cli_formats_and_errors(home: Path, tmp_path: Path) -> None:
    base = ("query", "--dataset", DATASET, "--encoder", ENCODER)
    shown = run_bench(home, *base, "--where", "label = 5 AND processing = 'jpeg95_444'", "--columns", "image_id,label_name")
    assert shown.returncode == 0, shown.stderr
    assert "motorcycle/train/000" in shown.stdout and "6 rows" in shown.stdout
    out = tmp_path / "rows.parquet"
    saved = run_bench(home, *base, "--where", "split = 'val'", "--format", "parquet", "--out", str(out))
    assert saved.returncode == 0, saved.stderr
    assert pq.read_table(out).num_rows == 11 * 2 * 2
    csv = run_bench(home, *base, "--where", "label = 0", "--format", "csv", "--columns", "image_id", "--limit", "2")
    assert csv.stdout.splitlines()[0] == '"image_id"' and len(csv.stdout.splitlines()) == 3
    bad = run_bench(home, *base, "--where", "label = = 3")
    assert bad.returncode == 2 and "rejected" in bad.stderr and "Valid columns" in bad.stderr and "Traceback" not in bad.stderr
    nearest = run_bench(home, *base, "--like", str(COFFEE), "--k", "2", "--columns", "image_id,label_name")
    assert nearest.returncode == 0, nearest.stderr
    assert nearest.stdout.count("coffee") >= 2


def test_cli_table_fits_100_columns_with_one_line_per_row(home: Path) -> None:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    base = ("query", "--dataset", DATASET, "--encoder", ENCODER, "--where", "processing = 'jpeg75_420'")
    for extra in (("--limit", "5"), ("--like", str(COFFEE), "--k", "5")):
        done = subprocess.run(bench_command(home, *base, *extra), check=False, capture_output=True, text=True,
                              env=environment, cwd=PROJECT, timeout=300)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len([line for line in lines if line.startswith("│")]) == 5  # one line per row
        assert max(len(line) for line in lines) <= 100
        header = [part.strip() for part in next(line for line in lines if line.startswith("┃")).split("┃")[1:-1]]
        assert header[:2] == (["rank", "score"] if "--like" in extra else ["image_id", "split"])
        assert "camera_make" not in header and "(empty in every row)" in done.stdout and "--columns" in done.stdout
