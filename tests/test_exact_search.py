"""`bench.exact_search`: exact top-k search agrees with a brute-force reference on every backend, ties included."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import exact_search
from bench.vectors import normalise

DIM = 12
NONZEROS = 4  # entries +-1/2 at 4 places: unit norm, every inner product a multiple of 1/4
DATABASE_ROWS = 300
QUERY_ROWS = 40
SMALL_LABEL = 4  # only 5 database rows carry it, so restrict="same" with k=10 pads
QUERY_ONLY_LABEL = 5  # no database row carries it, so restrict="same" finds nothing
KS = (1, 7, 10, DATABASE_ROWS + 100)
RESTRICTS = ("none", "same", "other")


def faiss_gpu_count() -> int:
    """GPUs visible to FAISS; 0 for a CPU-only build or when FAISS is missing."""
    if importlib.util.find_spec("faiss") is None:
        return 0
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


HAS_FAISS = importlib.util.find_spec("faiss") is not None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


BACKENDS = [
    "torch",
    pytest.param("faiss-cpu", marks=pytest.mark.skipif(not HAS_FAISS, reason="faiss is not installed")),
    pytest.param(
        "faiss-gpu",
        marks=pytest.mark.skipif(faiss_gpu_count() == 0, reason="faiss reports no GPU (CPU-only build or no CUDA device)"),
    ),
]


# Tiny matrices: one thread each for torch and FAISS (conftest.single_thread).
pytestmark = pytest.mark.usefixtures("single_thread")


def exact_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    """Rows with exactly NONZEROS entries of +-1/2: unit norm, and scores exact in float32 in any summation order."""
    out = np.zeros((count, DIM), dtype=np.float32)
    for row in range(count):
        columns = rng.choice(DIM, size=NONZEROS, replace=False)
        out[row, columns] = rng.choice([-0.5, 0.5], size=NONZEROS)
    return out


@functools.lru_cache(maxsize=1)
def planted_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Database with duplicated rows, a zero row and a tiny label group; queries with a zero row and copies of database rows."""
    rng = np.random.default_rng(20240611)
    database = exact_vectors(rng, DATABASE_ROWS)
    database[200:230] = database[10:40]  # exact duplicates, far apart in row order
    database[250:260] = database[5]  # ten more copies of one row
    database[123] = 0.0
    database_labels = rng.integers(0, SMALL_LABEL, size=DATABASE_ROWS)
    database_labels[[3, 77, 150, 205, 299]] = SMALL_LABEL
    queries = exact_vectors(rng, QUERY_ROWS)
    queries[0] = database[5]
    queries[1] = database[20]
    queries[2] = -database[30]
    queries[3] = 0.0
    query_labels = rng.integers(0, SMALL_LABEL, size=QUERY_ROWS)
    query_labels[[4, 9, 0]] = SMALL_LABEL
    query_labels[[6, 11]] = QUERY_ONLY_LABEL
    return queries, database, query_labels, database_labels


def reference_search(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    restrict: str,
    query_labels: np.ndarray | None = None,
    database_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: score every allowed row, sort by (-score, row), keep k; pad with row -1 and score -inf."""
    all_scores = queries.astype(np.float64) @ database.astype(np.float64).T
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    for q in range(len(queries)):
        allowed = [
            row
            for row in range(len(database))
            if restrict == "none"
            or (restrict == "same" and database_labels[row] == query_labels[q])
            or (restrict == "other" and database_labels[row] != query_labels[q])
        ]
        best = sorted(((float(all_scores[q, row]), row) for row in allowed), key=lambda pair: (-pair[0], pair[1]))[:k]
        for column, (score, row) in enumerate(best):
            scores[q, column] = score
            rows[q, column] = row
    return scores, rows


@functools.lru_cache(maxsize=None)
def planted_reference(k: int, restrict: str) -> tuple[np.ndarray, np.ndarray]:
    queries, database, query_labels, database_labels = planted_data()
    return reference_search(queries, database, k, restrict, query_labels, database_labels)


def test_planted_scores_are_exact_and_tie_at_the_boundary() -> None:
    """The data really has ties across the k-th position, so a wrong tie-break would be caught."""
    queries, database, _, _ = planted_data()
    assert np.array_equal(np.linalg.norm(database[database.any(axis=1)], axis=1), np.ones(DATABASE_ROWS - 1, np.float32))
    scores32 = queries @ database.T
    scores64 = queries.astype(np.float64) @ database.astype(np.float64).T
    assert np.array_equal(scores32.astype(np.float64), scores64)
    assert np.array_equal(scores64 * 4, np.round(scores64 * 4))
    for k in (1, 10):
        ref_scores, ref_rows = planted_reference(k, "none")
        cut = 0
        for q in range(len(queries)):
            outside = np.setdiff1d(np.arange(DATABASE_ROWS), ref_rows[q])
            cut += int(np.any(scores64[q, outside] == ref_scores[q, -1]))
        assert cut >= len(queries) // 2, f"k={k}: only {cut} queries have a tie cut at the k-th position"
    _, same_rows = planted_reference(10, "same")
    assert np.all(same_rows[[4, 9, 0], 5:] == -1)
    assert np.all(same_rows[[6, 11]] == -1)


@pytest.fixture(params=["overfetch", "per-label"])
def other_strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run "other" searches both ways: one over-fetching pass, or one search per query label."""
    if request.param == "per-label":
        monkeypatch.setattr(exact_search, "OVERFETCH_MAX", 0)
    return request.param


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("restrict", RESTRICTS)
@pytest.mark.parametrize("k", KS)
def test_search_matches_brute_force(backend: str, restrict: str, k: int, other_strategy: str) -> None:
    """Rows and scores equal the (-score, row) brute force for every backend, restriction and k, padding included."""
    if restrict != "other" and other_strategy == "per-label":
        pytest.skip("the strategy only applies to restrict='other'")
    queries, database, query_labels, database_labels = planted_data()
    before = [array.copy() for array in (queries, database, query_labels, database_labels)]
    found = exact_search.search(
        queries, database, k, restrict=restrict, query_labels=query_labels, database_labels=database_labels, backend=backend
    )
    want_scores, want_rows = planted_reference(k, restrict)
    assert all(np.array_equal(a, b) for a, b in zip(before, (queries, database, query_labels, database_labels)))
    assert found.rows.dtype == np.int64 and found.scores.dtype == np.float32
    assert found.rows.shape == found.scores.shape == (QUERY_ROWS, k)
    assert np.array_equal(found.rows, want_rows)
    assert np.array_equal(found.scores, want_scores)


def tie_database(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Query e; two exact copies of e; 40 identical rows at score 1/2 scattered among 60 rows at score <= 0."""
    query = np.zeros((1, DIM), dtype=np.float32)
    query[0, :4] = 0.5
    tied = np.zeros(DIM, dtype=np.float32)
    tied[:4] = [0.5, 0.5, 0.5, -0.5]  # score (1 + 1 + 1 - 1) / 4 = 1/2
    low = np.zeros(DIM, dtype=np.float32)
    low[4:8] = 0.5  # score 0
    rows = [query[0]] * 2 + [tied] * 40 + [low] * 30 + [-query[0]] * 30
    order = rng.permutation(len(rows))
    database = np.stack(rows)[order]
    labels = rng.integers(0, 2, size=len(database))
    return query, database, labels, order


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("restrict", ["none", "same", "other"])
def test_wide_tie_at_kth_score_goes_to_lowest_rows(backend: str, restrict: str, other_strategy: str) -> None:
    """With 40 rows tied at the k-th score (more than k + TIE_MARGIN), the lowest tied rows win."""
    k = 5
    assert 40 > k + exact_search.TIE_MARGIN
    query, database, labels, order = tie_database(np.random.default_rng(7))
    query_labels = np.array([1])
    found = exact_search.search(query, database, k, restrict=restrict, query_labels=query_labels, database_labels=labels, backend=backend)
    allowed = np.ones(len(database), bool) if restrict == "none" else (labels == 1) if restrict == "same" else (labels != 1)
    exact = np.flatnonzero((order < 2) & allowed)
    tied = np.flatnonzero((order >= 2) & (order < 42) & allowed)
    expected = np.concatenate([exact, tied])[:k]
    assert len(exact) < k < len(exact) + len(tied) - exact_search.TIE_MARGIN
    assert found.rows.tolist() == [expected.tolist()]
    assert found.scores.tolist() == [[1.0] * len(exact) + [0.5] * (k - len(exact))]
    want_scores, want_rows = reference_search(query, database, k, restrict, query_labels, labels)
    assert np.array_equal(found.rows, want_rows) and np.array_equal(found.scores, want_scores)


def test_exact_top_k_widens_when_a_raw_search_returns_the_worst_ties() -> None:
    """A raw searcher that fetches tied candidates highest row first still yields the lowest rows, after widening."""
    k = 5
    query, database, _, _ = tie_database(np.random.default_rng(11))
    widths: list[int] = []

    def adversarial(queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        widths.append(width)
        scores = queries.astype(np.float64) @ database.astype(np.float64).T
        picked = [sorted(range(len(database)), key=lambda row: (-s[row], -row))[:width] for s in scores]
        rows = np.array(picked, dtype=np.int64)
        return np.take_along_axis(scores, rows, axis=1).astype(np.float32), rows

    scores, rows = exact_search._exact_top_k(lambda positions, width: adversarial(query[positions], width), len(query), k, len(database))
    want_scores, want_rows = reference_search(query, database, k, "none")
    assert np.array_equal(rows, want_rows) and np.array_equal(scores, want_scores)
    assert len(widths) > 1 and widths[0] == k + exact_search.TIE_MARGIN


def test_unknown_backend_names_the_choices() -> None:
    """An unknown backend raises ValueError listing every valid name."""
    with pytest.raises(ValueError) as caught:
        exact_search.resolve_backend("cuda")
    message = str(caught.value)
    assert "cuda" in message
    for name in ("auto", "faiss-gpu", "torch", "faiss-cpu"):
        assert name in message
    with pytest.raises(ValueError):
        exact_search.search(np.zeros((1, DIM), np.float32), np.zeros((2, DIM), np.float32), 1, backend="gpu")


def test_explicit_backends_are_returned_unchanged() -> None:
    """A named backend is used as given (faiss-gpu only where FAISS sees a GPU)."""
    for name in ("torch", "faiss-cpu") + (("faiss-gpu",) if faiss_gpu_count() > 0 else ()):
        assert exact_search.resolve_backend(name) == name


@pytest.mark.skipif(faiss_gpu_count() > 0, reason="FAISS sees a GPU here, so faiss-gpu is not refused")
def test_faiss_gpu_without_a_gpu_build_is_refused_up_front() -> None:
    """faiss-gpu where FAISS has no GPU: a UsageError naming the install command and the other
    backends, raised when the backend is resolved, before any index is built or searched."""
    from bench.errors import UsageError

    with pytest.raises(UsageError) as caught:
        exact_search.resolve_backend("faiss-gpu")
    message = str(caught.value)
    assert 'pip install -e ".[gpu]"' in message
    for name in ("torch", "faiss-cpu", "auto"):
        assert name in message
    queries, database, _, _ = planted_data()
    for start in (
        lambda: exact_search.build(database, backend="faiss-gpu"),
        lambda: exact_search.search(queries, database, 3, backend="faiss-gpu"),
        lambda: exact_search.plain_top_k(queries, database, 3, backend="faiss-gpu"),
    ):
        with pytest.raises(UsageError, match=r"pip install -e"):
            start()


@pytest.mark.skipif(not HAS_FAISS and not cuda_available(), reason="auto picks faiss-cpu here, and faiss is not installed")
def test_auto_never_refuses_for_want_of_faiss_gpu() -> None:
    """auto keeps choosing a backend that runs here, whatever FAISS build is installed."""
    chosen = exact_search.resolve_backend("auto")
    assert chosen in ("faiss-gpu", "torch", "faiss-cpu")
    queries, database, _, _ = planted_data()
    want_scores, want_rows = planted_reference(7, "none")
    found = exact_search.search(queries, database, 7, backend="auto")
    assert np.array_equal(found.rows, want_rows) and np.array_equal(found.scores, want_scores)


@pytest.mark.skipif(
    faiss_gpu_count() == 0 or not cuda_available(),
    reason="needs an NVIDIA GPU seen by both FAISS's GPU build (pip install -e \".[gpu]\") and torch CUDA",
)
@pytest.mark.parametrize("restrict", RESTRICTS)
def test_faiss_gpu_and_torch_cuda_give_identical_neighbours(restrict: str) -> None:
    """On the same vectors, FAISS GPU and torch on CUDA return the same rows and scores, ties
    included: every score is a multiple of 1/4, exact in float32 on both."""
    rng = np.random.default_rng(99)
    database = exact_vectors(rng, 20_000)
    queries = exact_vectors(rng, 500)
    database_labels = rng.integers(0, 50, size=len(database))
    query_labels = rng.integers(0, 50, size=len(queries))
    found = {}
    for backend in ("faiss-gpu", "torch"):
        found[backend] = exact_search.search(
            queries, database, 10, restrict=restrict, query_labels=query_labels, database_labels=database_labels, backend=backend
        )
    assert np.array_equal(found["faiss-gpu"].rows, found["torch"].rows)
    assert np.array_equal(found["faiss-gpu"].scores, found["torch"].scores)
    assert np.all(found["torch"].rows >= 0)
    sample = slice(0, 20)  # the brute force on a few queries, so agreement is not a shared mistake
    _, want_rows = reference_search(queries[sample], database, 10, restrict, query_labels[sample], database_labels)
    assert np.array_equal(found["torch"].rows[sample], want_rows)


def test_auto_backend_picks_faiss_cpu_without_a_gpu() -> None:
    """auto: FAISS GPU if it sees a GPU, else torch when CUDA is available, else FAISS CPU."""
    import torch

    if faiss_gpu_count() > 0:
        expected = "faiss-gpu"
    elif torch.cuda.is_available():
        expected = "torch"
    else:
        expected = "faiss-cpu"
    assert exact_search.resolve_backend("auto") == expected
    assert exact_search.resolve_backend() == expected


def test_normalise_gives_unit_rows_and_keeps_zero_rows_zero() -> None:
    """Rows get unit L2 norm in float32, zero rows stay exactly zero, the input is not modified."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(6, 5)) * np.array([[1e-3], [1.0], [1e3], [7.0], [1.0], [1.0]])
    vectors[4] = 0.0
    original = vectors.copy()
    out = normalise(vectors)
    assert out.dtype == np.float32 and out.shape == vectors.shape
    assert np.array_equal(vectors, original)
    norms = np.linalg.norm(out.astype(np.float64), axis=1)
    assert np.allclose(np.delete(norms, 4), 1.0, rtol=0, atol=1e-6)
    assert np.array_equal(out[4], np.zeros(5, np.float32))
    assert np.all(np.isfinite(out))
    doubled = np.array([[0.0, 2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    assert np.array_equal(normalise(doubled), doubled / 2)


@pytest.mark.parametrize(
    ("query_shape", "database_shape"),
    [((3, DIM), (5, DIM - 1)), ((DIM,), (5, DIM)), ((3, DIM), (DIM,))],
)
def test_mismatched_shapes_raise(query_shape: tuple[int, ...], database_shape: tuple[int, ...]) -> None:
    """Queries and database of different widths, or not 2-D, raise ValueError."""
    with pytest.raises(ValueError):
        exact_search.search(np.zeros(query_shape, np.float32), np.zeros(database_shape, np.float32), 1, backend="torch")


def test_restricted_search_needs_labels() -> None:
    """restrict='same'/'other' without labels raises ValueError."""
    for restrict in ("same", "other"):
        with pytest.raises(ValueError):
            exact_search.search(np.zeros((1, DIM), np.float32), np.zeros((2, DIM), np.float32), 1, restrict=restrict, backend="torch")


GPU_BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_gpu_benchmark_explains_itself_and_runs_its_cpu_quick_mode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`benchmarks/gpu.py --help` explains the rows; its CPU quick mode runs every part and prints
    one table, each row labelled reduced and the rows that need a GPU named."""
    shown = subprocess.run([sys.executable, str(GPU_BENCHMARK), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    for phrase in ("usage: python benchmarks/gpu.py", "--quick", "knn_influence.run", "plain_top_k", "max_memory_allocated"):
        assert phrase in shown.stdout
    loaded = importlib.util.spec_from_file_location("gpu_benchmark", GPU_BENCHMARK)
    assert loaded is not None and loaded.loader is not None
    benchmark = importlib.util.module_from_spec(loaded)
    monkeypatch.setitem(sys.modules, "gpu_benchmark", benchmark)  # its dataclasses look their module up
    loaded.loader.exec_module(benchmark)
    status = benchmark.main(["--quick", "--device", "cpu"], hard_limit=False)
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "FAILED" not in printed and "skipped" not in printed
    search_row = "search · CPU stand-in" if HAS_FAISS else "search · torch CUDA vs CPU"
    for row in (search_row, "probe · CUDA vs CPU (reduced)", "extraction · EfficientNet-Lite0 fp32 (reduced)", "knn-influence (reduced)"):
        assert row in printed
    assert "needs a GPU" in printed
    # the one goal a CPU judges: torch and FAISS CPU return the same neighbours
    assert ("goals met: 1 of 1" if HAS_FAISS else "goals met: 0 of 0") in printed
