"""A cached rerun decides that every cell is current without a model library or a vector read:
the fingerprint is computed without torch, and each table's id comes from its state record
(bench.table_state) while that record is current. A record that is stale, missing or damaged
is never believed: the store is read the exact way, and a changed table still makes its cells
stale."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from bench import __main__ as cli
from bench import table_state
from bench.encoders.catalog import ENCODERS
from bench.encoders.preprocess import paper_preprocess
from bench.extraction.fingerprint import fingerprint, preprocess_description
from bench.store import TABLE_ID_KEY, Store, rows_to_arrow, table_name

PROJECT = Path(__file__).resolve().parents[1]
RANDOM = "effnet/lite0.random"
KNN = ("run", "knn-influence", "--encoders", RANDOM, "--group", "sharpening", "--seeds", "1", "--k", "1", "--dataset", "imagefolder")
HEAVY = ("torch", "torchvision", "timm", "open_clip", "lancedb", "lance", "pyarrow")


def photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for split, count in (("train", 3), ("val", 1)):
        for label, name in enumerate(("cat", "dog")):
            for index in range(count):
                photo(root / split / name / f"{index}.png", 100 * label + 10 * index + (5 if split == "val" else 0))
    return root


def bench(home: Path, root: Path, capsys, *extra: str) -> str:
    """Run knn-influence on the photos in this process; its messages on one line."""
    assert cli.main(["--home", str(home), *KNN, "--root", str(root), *extra]) == 0
    return " ".join(capsys.readouterr().err.split())


def imported_by(arguments: list[str], home: Path) -> tuple[int, set[str], str]:
    """Run the command line in a fresh interpreter: its exit status, every module it imported, its messages."""
    script = textwrap.dedent("""
        import json, sys
        from bench.__main__ import main
        try:
            status = main(json.loads(sys.argv[1]))
        except SystemExit as stopped:
            status = stopped.code
        print("MODULES " + json.dumps(sorted(sys.modules)))
        sys.exit(status)
    """)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(arguments)], capture_output=True, text=True, env=environment,
                          cwd=PROJECT, timeout=600)
    line = next(line for line in done.stdout.splitlines() if line.startswith("MODULES "))
    return done.returncode, set(json.loads(line.removeprefix("MODULES "))), done.stderr


def heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)


def the_table(home: Path) -> tuple[Path, str]:
    """The home's one table folder and its name."""
    (folder,) = (home / "embeddings").glob("*.lance")
    return folder, folder.name.removesuffix(".lance")


def test_the_preprocess_description_is_torchvisions_own_for_every_encoder() -> None:
    specs = list(ENCODERS.values())
    base = ENCODERS[RANDOM]
    specs += [dataclasses.replace(base, interpolation=mode, input_size=size, mean=(0.1, 0.2, 0.3), std=[0.4, 0.5, 0.6])
              for mode in ("bilinear", "nearest") for size in (32, 518)]
    for spec in specs:
        assert preprocess_description(spec) == paper_preprocess(spec).describe(), spec.name
    with pytest.raises(KeyError):
        preprocess_description(dataclasses.replace(base, interpolation="lanczos"))
    with pytest.raises(KeyError):
        paper_preprocess(dataclasses.replace(base, interpolation="lanczos"))


def test_help_and_the_fingerprint_import_no_model_library_nor_the_store(tmp_path: Path) -> None:
    status, modules, _ = imported_by(["--help"], tmp_path / "home")
    assert status == 0 and heavy(modules) == []
    script = ("import sys, json; from bench.encoders.catalog import get; from bench.extraction.fingerprint import fingerprint; "
              f"fingerprint(get({RANDOM!r})); fingerprint(get('effnet/lite0.in1k')); print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT, timeout=600, check=True)
    assert heavy(set(json.loads(done.stdout))) == []


def test_the_cached_rerun_imports_no_model_library_nor_the_store(tmp_path: Path, photos: Path, capsys) -> None:
    home = tmp_path / "home"
    bench(home, photos, capsys)
    status, modules, err = imported_by([*KNN, "--root", str(photos)], home)
    assert status == 0 and "cached:" in err and "stale" not in err, err
    assert heavy(modules) == []
    # without its state record the same rerun is served too, from the exact read of the store (which writes the record anew)
    folder, name = the_table(home)
    (home / "embeddings" / table_state.STATE_FOLDER / f"{name}.json").unlink()
    status, modules, err = imported_by([*KNN, "--root", str(photos)], home)
    assert status == 0 and "cached:" in err and "stale" not in err, err
    assert "lancedb" in modules and table_state.recall(str(home / "embeddings"), name) is not None


def test_the_record_holds_what_lancedb_holds_and_counts_only_while_the_table_is_unchanged(tmp_path: Path) -> None:
    uri = str(tmp_path / "embeddings")
    store = Store(uri)
    spec = ENCODERS[RANDOM]
    store.prepare("d", RANDOM, 4, fingerprint(spec))
    name = table_name("d", RANDOM)
    exact = Store(uri).db.open_table(name).schema.metadata[TABLE_ID_KEY].decode()
    recorded = table_state.recall(uri, name)
    assert recorded is not None and recorded.table_id == exact and recorded.fingerprint == json.loads(json.dumps(fingerprint(spec)))

    rows = [{"image_id": f"i{n}", "split": "train", "processing": "none", "op_version": 1, "source_stamp": "s"} for n in range(3)]
    written = store.write("d", RANDOM, rows_to_arrow(rows, np.ones((3, 4), np.float32), store.prepare("d", RANDOM, 4, fingerprint(spec))))
    assert table_state.recall(uri, name).version == written.version  # a commit by bench records its new state

    lancedb.connect(uri).open_table(name).delete("image_id = 'i0'")  # a commit behind bench's back
    assert table_state.recall(uri, name) is None
    assert Store(uri).table_id("d", RANDOM) == exact  # read the exact way, and recorded anew
    assert table_state.recall(uri, name).version == written.version + 1


def test_a_table_recreated_behind_benchs_back_is_never_taken_for_the_recorded_one(tmp_path: Path) -> None:
    uri = str(tmp_path / "embeddings")
    store = Store(uri)
    dim_schema = store.prepare("d", RANDOM, 4, fingerprint(ENCODERS[RANDOM]))
    name = table_name("d", RANDOM)
    record = Path(uri) / table_state.STATE_FOLDER / f"{name}.json"
    kept = record.read_bytes()
    database = lancedb.connect(uri)
    database.drop_table(name)
    metadata = {**dim_schema.metadata, TABLE_ID_KEY: b"another"}
    database.create_table(name, schema=pa.schema(list(dim_schema), metadata=metadata))  # the same version count, another table
    record.write_bytes(kept)  # and the old record put back beside it
    assert table_state.recall(uri, name) is None
    assert Store(uri).table_id("d", RANDOM) == "another"
    database.drop_table(name)  # gone: the record cannot speak for it
    assert table_state.recall(uri, name) is None and Store(uri).table_id("d", RANDOM) is None


@pytest.mark.parametrize("damage", ["empty", "not json", "a list", "another table's", "a text version", "no manifests"])
def test_a_damaged_record_is_not_believed(damage: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "embeddings")
    store = Store(uri)
    store.prepare("d", RANDOM, 4, fingerprint(ENCODERS[RANDOM]))
    store.prepare("e", RANDOM, 4, fingerprint(ENCODERS[RANDOM]))
    name = table_name("d", RANDOM)
    record = Path(uri) / table_state.STATE_FOLDER / f"{name}.json"
    document = json.loads(record.read_text())
    other = json.loads((Path(uri) / table_state.STATE_FOLDER / f"{table_name('e', RANDOM)}.json").read_text())
    damaged = {
        "empty": "", "not json": '{"format": 1, "table_id": ', "a list": "[]",
        "another table's": json.dumps({**other, "manifests": document["manifests"]}),
        "a text version": json.dumps({**document, "version": "1"}),
        "no manifests": json.dumps({key: value for key, value in document.items() if key != "manifests"}),
    }[damage]
    record.write_text(damaged)
    assert table_state.recall(uri, name) is None
    assert Store(uri).table_id("d", RANDOM) == document["table_id"]
    assert json.loads(record.read_text()) == document  # written anew


def test_a_rebuild_behind_benchs_back_makes_the_cell_stale(tmp_path: Path, photos: Path, capsys) -> None:
    home = tmp_path / "home"
    bench(home, photos, capsys)
    folder, name = the_table(home)
    uri = str(home / "embeddings")
    record = Path(uri) / table_state.STATE_FOLDER / f"{name}.json"
    kept = record.read_bytes()
    database = lancedb.connect(uri)
    rows = database.open_table(name).to_arrow()
    database.drop_table(name)
    metadata = {**rows.schema.metadata, TABLE_ID_KEY: b"rebuilt-elsewhere"}
    database.create_table(name, data=rows.replace_schema_metadata(metadata))  # the same rows, another table
    record.write_bytes(kept)
    err = bench(home, photos, capsys)
    assert "its table was rebuilt since" in err and "cached:" not in err
    cell = json.loads(next((home / "reports" / "results").glob("**/*.json")).read_text())
    assert cell["inputs"]["table"] == "rebuilt-elsewhere"
    assert "cached:" in bench(home, photos, capsys)


def test_a_record_that_cannot_be_written_leaves_the_run_on_the_exact_path(tmp_path: Path, photos: Path, capsys) -> None:
    home = tmp_path / "home"
    bench(home, photos, capsys)
    state = home / "embeddings" / table_state.STATE_FOLDER
    for path in state.iterdir():
        path.unlink()
    state.rmdir()
    state.write_text("a file where the records' folder should be")
    assert "cached:" in bench(home, photos, capsys)
    _, name = the_table(home)
    assert table_state.recall(str(home / "embeddings"), name) is None


def test_a_store_in_object_storage_has_no_record() -> None:
    assert table_state.local_folder("s3://bucket/prefix") is None
    assert table_state.recall("s3://bucket/prefix", "t") is None
    assert table_state.local_folder("file:///tmp/x") == Path("/tmp/x")


def test_a_version_folder_that_cannot_be_listed_is_left_to_the_exact_read(tmp_path: Path, monkeypatch) -> None:
    uri = str(tmp_path / "embeddings")
    Store(uri).prepare("d", RANDOM, 4, fingerprint(ENCODERS[RANDOM]))
    name = table_name("d", RANDOM)
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == table_state.VERSIONS_FOLDER:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert table_state.manifests(Path(uri), name) is None and table_state.recall(uri, name) is None
