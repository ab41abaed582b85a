"""Similarity distributions and the masking curve against plain per-pair / per-query references."""

from __future__ import annotations

import numpy as np
import pytest

from bench.vectors import SplitVectors
from bench.tasks import similarity
from bench.tasks.masking import curve


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_distributions_match_every_pair_scored_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts, sums and sizes of the four parts equal a loop over every (query, database image) pair,
    with query blocks smaller than the queries so the accumulation across blocks is exercised."""
    monkeypatch.setattr(similarity, "QUERY_BLOCK", 7)
    rng = np.random.default_rng(0)
    queries, same, other = (rng.normal(size=(n, 12)).astype(np.float32) for n in (23, 31, 31))
    query_labels, database_labels = rng.integers(0, 4, 23), rng.integers(0, 4, 31)
    found = similarity.distributions(queries, query_labels, same, other, database_labels)
    want: dict[str, list[float]] = {part: [] for part in similarity.PARTS}
    q, s, o = unit(queries.astype(np.float64)), unit(same.astype(np.float64)), unit(other.astype(np.float64))
    for i in range(len(q)):
        for j in range(len(s)):
            semantic = "semantic_same" if query_labels[i] == database_labels[j] else "semantic_diff"
            want[f"{semantic}/processing_same"].append(float(q[i] @ s[j]))
            want[f"{semantic}/processing_diff"].append(float(q[i] @ o[j]))
    for part in similarity.PARTS:
        assert found.sizes[part] == len(want[part])
        assert found.sums[part] == pytest.approx(sum(want[part]), abs=1e-4)
        histogram = np.histogram(np.clip(want[part], -1, 1), bins=similarity.EDGES)[0]
        assert np.abs(found.counts[part] - histogram).sum() <= 2  # float32 vs float64 at a bin edge
        assert found.counts[part].sum() == len(want[part])


def test_a_shared_processing_offset_shows_as_a_positive_shift() -> None:
    """Vectors = semantic centre + processing offset: sharing the query's processing raises similarity
    in both semantic groups, and same-semantic pairs stay above different-semantic ones."""
    rng = np.random.default_rng(1)
    centres, offsets = rng.normal(size=(5, 32)), rng.normal(size=(2, 32)) * 0.8
    query_labels, database_labels = rng.integers(0, 5, 40), rng.integers(0, 5, 60)
    noise = lambda n: rng.normal(size=(n, 32)) * 0.3  # noqa: E731
    queries = centres[query_labels] + offsets[0] + noise(40)
    same = centres[database_labels] + offsets[0] + noise(60)
    other = centres[database_labels] + offsets[1] + noise(60)
    metrics = similarity.distributions(queries, query_labels, same, other, database_labels).metrics()
    assert metrics["shift_semantic_same"] > 0.05 and metrics["shift_semantic_diff"] > 0.05
    assert metrics["mean_cosine.semantic_same/processing_diff"] > metrics["mean_cosine.semantic_diff/processing_same"]


def test_masking_curve_equals_a_full_sort_vote_per_ratio() -> None:
    """Per ratio: cosine, full stable sort (lower row wins ties), unweighted vote with lowest-class ties."""
    rng = np.random.default_rng(2)
    names = ("mask0", "mask50", "mask95")
    train_labels, val_labels = rng.integers(0, 3, 50), rng.integers(0, 3, 20)
    centres = rng.normal(size=(3, 8))

    def split(labels: np.ndarray, prefix: str) -> SplitVectors:
        # more masking, less semantic signal; rounding plants exact ties
        vectors = {name: np.round(centres[labels] * (1 - r) + rng.normal(size=(len(labels), 8)), 1).astype(np.float32)
                   for name, r in zip(names, (0.0, 0.5, 0.95))}
        return SplitVectors(np.array([f"{prefix}{i}" for i in range(len(labels))]), labels, vectors)

    train, val = split(train_labels, "t"), split(val_labels, "v")
    k = 5
    found = curve(train, val, names, k, backend="faiss-cpu")
    for name in names:
        d, q = unit(train.vectors[name].astype(np.float64)), unit(val.vectors[name].astype(np.float64))
        correct = 0
        for i in range(len(q)):
            scores = (d @ q[i]).astype(np.float32)
            order = sorted(range(len(d)), key=lambda row: (-scores[row], row))[:k]
            votes = np.bincount(train_labels[order], minlength=3)
            correct += int(np.argmax(votes) == val_labels[i])
        assert found[name] == pytest.approx(100.0 * correct / len(q))
