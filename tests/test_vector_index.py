"""`bench vector-index build` and `query --like` through the index: measured against exact search, used
only while it covers every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage

from bench import __main__ as cli
from bench import query, vector_index
from bench.store import Store, rows_to_arrow

ENCODER = "effnet/lite0.random"
COFFEE = Path(skimage.__file__).parent / "data" / "coffee.png"


def test_index_build_reports_recall_and_like_uses_it_only_while_fresh(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    assert cli.main(["--home", str(home), "extract", "--dataset", "demo-mini", "--encoders", ENCODER, "--group", "jpeg"]) == 0
    capsys.readouterr()
    assert cli.main(["--home", str(home), "vector-index", "build", "--dataset", "demo-mini", "--encoder", ENCODER, "--sample", "30"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "396 rows indexed" in out and "recall@10 against exact search" in out
    recall = float(out.split("exact search ")[1].split(",")[0])
    assert 0.9 <= recall <= 1.0

    store = Store(home / "embeddings")
    indexed = query.like(store, "demo-mini", ENCODER, COFFEE, 5, where="processing = 'jpeg95_444'")
    exact = query.like(store, "demo-mini", ENCODER, COFFEE, 5, where="processing = 'jpeg95_444'", exact=True)
    assert "vector index" in query.search_method(indexed) and "exact search" in query.search_method(exact)
    assert set(indexed.column("processing").to_pylist()) == {"jpeg95_444"}
    assert indexed.column("image_id").to_pylist()[0] == exact.column("image_id").to_pylist()[0]
    assert abs(indexed.column("score").to_pylist()[0] - exact.column("score").to_pylist()[0]) < 1e-4

    assert cli.main(["--home", str(home), "extract", "--dataset", "demo-mini", "--encoders", ENCODER, "--processings", "sharpen2"]) == 0
    stale = query.like(store, "demo-mini", ENCODER, COFFEE, 3)
    state = store.vector_index("demo-mini", ENCODER)
    if state.unindexed_rows:  # rows added after the build: exact search, and why
        assert state.unindexed_rows == 66 and "misses 66 rows" in query.search_method(stale)
    else:  # an extraction that committed in several pieces compacts the table, which folds new rows into the index
        assert "vector index over 462 rows" in query.search_method(stale)


def test_recall_names_rows_by_their_key_even_where_the_made_from_columns_are_empty(tmp_path: Path) -> None:
    """Rows written without a source stamp (a table from elsewhere, a benchmark) are still told apart."""
    store = Store(tmp_path / "embeddings")
    schema = store.prepare("clustered", "synthetic/vectors", 64, {"synthetic": True})
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 20, 2000)
    vectors = rng.standard_normal((20, 64), dtype=np.float32)[labels] + 0.5 * rng.standard_normal((2000, 64), dtype=np.float32)
    rows = [{"image_id": f"img{i:05d}", "split": "train", "processing": "original", "label": int(labels[i])} for i in range(2000)]
    store.write("clustered", "synthetic/vectors", rows_to_arrow(rows, vectors, schema))

    report = vector_index.build(store, "clustered", "synthetic/vectors", sample=20)

    assert report.rows == 2000 and report.recall_at_10 >= 0.9  # keys joined with an empty stamp would all read the same: 0.1
