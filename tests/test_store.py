"""The LanceDB store: idempotent writes, fingerprint refusal, row alignment across processings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.store import (
    FingerprintMismatchError,
    MissingEmbeddingsError,
    Store,
    item_keys,
    rows_to_arrow,
)

DIM = 4


def _rows(ids: list[str], processing: str, split: str = "train") -> list[dict[str, object]]:
    return [
        {"image_id": i, "split": split, "processing": processing, "group": "jpeg", "op_version": 1, "source_stamp": "s", "label": n % 2, "label_name": f"c{n % 2}"}
        for n, i in enumerate(ids)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "embeddings")


def test_rewriting_the_same_keys_never_duplicates(store: Store) -> None:
    table_schema = store.prepare("d", "fam/enc.tag", DIM, {"weights": "a"})
    ids = ["b", "a", "c"]
    first = np.arange(12, dtype=np.float32).reshape(3, DIM)
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(ids, "p"), first, table_schema))
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(ids, "p"), first + 100, table_schema))
    assert store.count("d", "fam/enc.tag") == 3
    vectors = store.split_vectors("d", "fam/enc.tag", "train", ["p"])
    assert list(vectors.image_ids) == ["a", "b", "c"]
    np.testing.assert_array_equal(vectors.vectors["p"], (first + 100)[[1, 0, 2]])
    asked = item_keys(["a", "b", "c", "a", "a", "a"], ["train", "train", "train", "val", "train", "train"], ["p", "p", "p", "p", "q", "p"],
                      [1, 1, 1, 1, 1, 2], ["s", "s", "s", "s", "s", "s"])
    assert store.key_state("d", "fam/enc.tag").contains(asked).tolist() == [True, True, True, False, False, False]


def test_tables_use_lance_format_2_0(store: Store) -> None:
    store.prepare("d", "fam/enc.tag", DIM, {"weights": "a"})
    dataset_path = next((Path(store.uri)).glob("*.lance"))
    import lance

    assert lance.dataset(str(dataset_path)).data_storage_version == "2.0"


def test_a_different_fingerprint_is_refused_with_the_fix(store: Store) -> None:
    store.prepare("d", "fam/enc.tag", DIM, {"weights": "a", "dtype": "float32"})
    with pytest.raises(FingerprintMismatchError) as caught:
        store.prepare("d", "fam/enc.tag", DIM, {"weights": "b", "dtype": "float32"})
    message = str(caught.value)
    assert "weights" in message and "--rebuild" in message and "dtype" not in message
    store.prepare("d", "fam/enc.tag", DIM, {"dtype": "float32", "weights": "a"})  # same content, other order


def test_split_vectors_align_rows_across_processings_and_report_gaps(store: Store) -> None:
    table_schema = store.prepare("d", "fam/enc.tag", DIM, {})
    rng = np.random.default_rng(0)
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["x", "y", "z"], "p"), rng.normal(size=(3, DIM)), table_schema))
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["z", "x", "y"], "q"), rng.normal(size=(3, DIM)), table_schema))
    both = store.split_vectors("d", "fam/enc.tag", "train", ["p", "q"])
    assert list(both.image_ids) == ["x", "y", "z"]
    assert both.vectors["p"].shape == both.vectors["q"].shape == (3, DIM)
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["w"], "q"), rng.normal(size=(1, DIM)), table_schema))
    with pytest.raises(MissingEmbeddingsError, match="fill the gaps"):
        store.split_vectors("d", "fam/enc.tag", "train", ["p", "q"])
    with pytest.raises(MissingEmbeddingsError, match="extract"):
        store.split_vectors("d", "other/enc.tag", "train", ["p"])


def test_vectors_of_the_wrong_shape_are_refused(store: Store) -> None:
    table_schema = store.prepare("d", "fam/enc.tag", DIM, {})
    with pytest.raises(ValueError, match="shape"):
        rows_to_arrow(_rows(["a"], "p"), np.zeros((1, DIM + 1), np.float32), table_schema)


def test_the_same_image_in_two_splits_is_two_rows(store: Store) -> None:
    """The key is (image_id, split, processing): one image id under train and val stays two rows."""
    table_schema = store.prepare("d", "fam/enc.tag", DIM, {})
    vectors = np.ones((1, DIM), np.float32)
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["a"], "p", "train"), vectors, table_schema))
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["a"], "p", "val"), 2 * vectors, table_schema))
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["a"], "p", "val"), 3 * vectors, table_schema))
    found = store.scan("d", "fam/enc.tag", columns=["split", "vector"])
    assert sorted(zip(found.column("split").to_pylist(), (v[0] for v in found.column("vector").to_pylist()))) == [("train", 1.0), ("val", 3.0)]


def test_appends_while_alone_and_merges_after_another_writer(store: Store) -> None:
    """`since` = the version the writer last saw: unchanged -> append; changed -> merge on the key."""
    table_schema = store.prepare("d", "fam/enc.tag", DIM, {})
    vectors = np.ones((2, DIM), np.float32)
    first = store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["a", "b"], "p"), vectors, table_schema), since=store.version("d", "fam/enc.tag"))
    assert first.appended
    store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["c", "d"], "p"), vectors, table_schema))  # another writer
    late = store.write("d", "fam/enc.tag", rows_to_arrow(_rows(["c", "e"], "p"), vectors, table_schema), since=first.version)
    assert not late.appended and store.count("d", "fam/enc.tag") == 5  # c merged, not duplicated


def test_duplicates_are_refused_on_read_and_repaired(store: Store) -> None:
    table_schema = store.prepare("d", "fam/enc.tag", DIM, {})
    rng = np.random.default_rng(1)
    batch = rows_to_arrow(_rows(["a", "b", "c"], "p"), rng.normal(size=(3, DIM)), table_schema)
    version = store.version("d", "fam/enc.tag")
    store.write("d", "fam/enc.tag", batch, since=version)
    store.write("d", "fam/enc.tag", batch.slice(0, 2), since=store.version("d", "fam/enc.tag"))  # a writer that planned stale: a, b twice
    assert store.count("d", "fam/enc.tag") == 5 and store.key_state("d", "fam/enc.tag").duplicates() == 2
    with pytest.raises(MissingEmbeddingsError, match="more than once"):
        store.split_vectors("d", "fam/enc.tag", "train", ["p"])
    assert store.repair_duplicates("d", "fam/enc.tag") == 2
    assert store.count("d", "fam/enc.tag") == 3
    assert list(store.split_vectors("d", "fam/enc.tag", "train", ["p"]).image_ids) == ["a", "b", "c"]
