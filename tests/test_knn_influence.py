"""kNN processing influence (docs/protocol.md#knn-influence): `run` equals a literal brute-force implementation of the protocol."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import math
from typing import Callable

import numpy as np
import pytest

from bench import vectors as rows_module
from bench.knn import vote
from bench.tasks.knn_influence import KnnInfluence, run
from bench.vectors import SplitVectors, normalise

CLASSES = ("proc_a", "proc_b", "proc_c")
K = len(CLASSES)
LABELS = 4
SEMANTIC_DIM = 8  # label y < LABELS owns coordinate 2y, the unseen label the last one
DIM = SEMANTIC_DIM + K  # processing c owns coordinate SEMANTIC_DIM + c
TRAIN_IMAGES = 120
VAL_IMAGES = 30
UNSEEN_LABEL = LABELS  # carried by two val images in the "unseen" variant, by no train image
SEEDS = (0, 1, 2)
VARIANTS = ("seen", "unseen")
SEARCHES = [  # (--search, --backend)
    ("versioned", "auto"),
    ("restricted", "torch"),
    pytest.param(
        "restricted", "faiss-cpu", marks=pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss is not installed")
    ),
]

# Tiny matrices: one thread each for torch and FAISS (conftest.single_thread).
pytestmark = pytest.mark.usefixtures("single_thread")


TieKey = Callable[[float, int], tuple[float, int]]


def lowest_row_first(score: float, row: int) -> tuple[float, int]:
    return (-score, row)


def highest_row_first(score: float, row: int) -> tuple[float, int]:
    return (-score, -row)


def make_split(rng: np.random.Generator, labels: np.ndarray, prefix: str) -> SplitVectors:
    """Per image: +1 at its label's coordinate, one random +-1 elsewhere in the semantic block, and per
    processing c a +-1 (mostly +1) at coordinate SEMANTIC_DIM + c. Four entries of +-1, so every norm is
    exactly 2 and every normalised score is a multiple of 1/4."""
    count = len(labels)
    semantic = np.zeros((count, SEMANTIC_DIM), dtype=np.float32)
    for i, label in enumerate(labels):
        semantic[i, 2 * label if label < LABELS else SEMANTIC_DIM - 1] = 1.0
        others = [c for c in range(SEMANTIC_DIM) if semantic[i, c] == 0]
        chosen = rng.choice(others, size=2, replace=False)
        semantic[i, chosen] = rng.choice([-1.0, 1.0], size=2)
    vectors: dict[str, np.ndarray] = {}
    for c, name in enumerate(CLASSES):
        matrix = np.zeros((count, DIM), dtype=np.float32)
        matrix[:, :SEMANTIC_DIM] = semantic
        matrix[:, SEMANTIC_DIM + c] = rng.choice([-1.0, 1.0], size=count, p=[0.25, 0.75])
        vectors[name] = matrix
    image_ids = np.array(sorted(f"{prefix}{i:04d}" for i in range(count)))
    return SplitVectors(image_ids=image_ids, labels=labels.astype(np.int64), vectors=vectors)


@functools.lru_cache(maxsize=None)
def splits(variant: str) -> tuple[SplitVectors, SplitVectors]:
    """Train (120 images, 4 labels) and val (30 images) under 3 processings; "unseen" gives two val images a label no train image has."""
    rng = np.random.default_rng(1234)
    train_labels = np.arange(TRAIN_IMAGES) % LABELS
    rng.shuffle(train_labels)
    val_labels = np.arange(VAL_IMAGES) % LABELS
    rng.shuffle(val_labels)
    if variant == "unseen":
        val_labels[[3, 17]] = UNSEEN_LABEL
    return make_split(rng, train_labels, "train-"), make_split(rng, val_labels, "val-")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors.astype(np.float64), axis=-1, keepdims=True)


def knn_accuracy(
    train: SplitVectors, val: SplitVectors, test: str, database_for: Callable[[int], np.ndarray], k: int, tie_key: TieKey
) -> float:
    """Top-1 accuracy in %: per query, the database from `database_for(query)`, full sort by tie_key, unweighted vote."""
    num_classes = int(max(train.labels.max(), val.labels.max())) + 1
    correct = 0
    for q in range(len(val.labels)):
        query = l2_normalise(val.vectors[test][q].astype(np.float64))
        database = l2_normalise(database_for(q).astype(np.float64))
        scores = database @ query
        ranked = sorted(range(len(database)), key=lambda row: tie_key(float(scores[row]), row))[:k]
        counts = np.bincount(train.labels[ranked], minlength=num_classes)
        correct += int(np.argmax(counts) == val.labels[q])
    return 100.0 * (correct / len(val.labels))


def reference_triples(variant: str, k: int, tie_key: TieKey = lowest_row_first) -> dict[tuple[str, str, str], float]:
    """Every (test, pos, neg): train image i under pos if its label equals the query's label, else under neg."""
    train, val = splits(variant)
    out: dict[tuple[str, str, str], float] = {}
    for test, pos, neg in itertools.product(CLASSES, repeat=3):

        def mixed(q: int) -> np.ndarray:
            same = (train.labels == val.labels[q])[:, None]
            return np.where(same, train.vectors[pos], train.vectors[neg])

        out[test, pos, neg] = knn_accuracy(train, val, test, mixed, k, tie_key)
    return out


def reference_draw(seed: int, image_id: str) -> int:
    """The uniform setup's class of one train image, written out from its definition: the first 8
    bytes (little-endian) of BLAKE2b-64 over "<seed>|knn-uniform|<image_id>", modulo K."""
    digest = hashlib.blake2b(f"{seed}|knn-uniform|{image_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % K


def reference_uniform(variant: str, k: int) -> dict[tuple[str, int], float]:
    """Each train image under CLASSES[reference_draw(seed, its id)], queries under test."""
    train, val = splits(variant)
    out: dict[tuple[str, int], float] = {}
    for seed in SEEDS:
        assignment = [reference_draw(seed, image_id) for image_id in train.image_ids]
        mixed = np.stack([train.vectors[CLASSES[assignment[i]]][i] for i in range(len(train.labels))])
        for test in CLASSES:
            out[test, seed] = knn_accuracy(train, val, test, lambda q: mixed, k, lowest_row_first)
    return out


@functools.lru_cache(maxsize=None)
def reference(variant: str, k: int) -> tuple[dict[tuple[str, str, str], float], dict[tuple[str, int], float]]:
    return reference_triples(variant, k), reference_uniform(variant, k)


def hand_setups(triples: dict[tuple[str, str, str], float], uniform: dict[tuple[str, int], float]) -> dict[str, float]:
    """The §7.3 means, written out: all_same over t; the others over ordered pairs t != o; uniform over everything."""
    pairs = [(t, o) for t in CLASSES for o in CLASSES if t != o]
    assert len(pairs) == K * (K - 1)
    return {
        "all_same": math.fsum(triples[t, t, t] for t in CLASSES) / K,
        "all_diff": math.fsum(triples[t, o, o] for t, o in pairs) / len(pairs),
        "pos_same": math.fsum(triples[t, t, o] for t, o in pairs) / len(pairs),
        "neg_same": math.fsum(triples[t, o, t] for t, o in pairs) / len(pairs),
        "uniform": math.fsum(uniform.values()) / len(uniform),
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_vectors_have_exact_power_of_two_norms(variant: str) -> None:
    """Every vector has norm exactly 2, so bench's normalisation and the reference's agree bit for bit."""
    for split in splits(variant):
        for name in CLASSES:
            vectors = split.vectors[name]
            assert np.array_equal(np.linalg.norm(vectors, axis=1), np.full(len(vectors), 2.0, np.float32))
            assert np.array_equal(normalise(vectors), vectors / 2)


@pytest.mark.parametrize("k", [1, 5])
def test_planted_ties_decide_the_result(k: int) -> None:
    """Breaking ties towards the higher row changes some accuracies, so the tie-break is really tested."""
    right = reference("seen", k)[0]
    wrong = reference_triples("seen", k, highest_row_first)
    assert any(right[key] != wrong[key] for key in right)


def test_processing_changes_the_neighbours() -> None:
    """The data makes processing matter: the four §7.3 setups do not all give the same accuracy."""
    triples, uniform = reference("seen", 5)
    assert len(set(triples.values())) > 3
    means = hand_setups(triples, uniform)
    assert means["pos_same"] > means["neg_same"]


@pytest.mark.parametrize("search, backend", SEARCHES)
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("variant", VARIANTS)
def test_run_matches_brute_force_protocol(search: str, backend: str, k: int, variant: str) -> None:
    """Every triple and every (test, seed) of uniform equals the brute force exactly; the setup means agree."""
    train, val = splits(variant)
    outcome = run(train, val, CLASSES, k=k, seeds=SEEDS, search=search, backend=backend)
    triples, uniform = reference(variant, k)
    assert outcome.classes == CLASSES and outcome.k == k
    assert outcome.num_classes == (LABELS + 1 if variant == "unseen" else LABELS)
    assert set(outcome.triples) == set(triples) and len(triples) == K**3
    assert set(outcome.uniform) == set(uniform) and len(uniform) == K * len(SEEDS)
    mismatched = {key: (outcome.triples[key], want) for key, want in triples.items() if outcome.triples[key] != want}
    assert not mismatched
    mismatched_uniform = {key: (outcome.uniform[key], want) for key, want in uniform.items() if outcome.uniform[key] != want}
    assert not mismatched_uniform
    assert outcome.setups() == pytest.approx(hand_setups(triples, uniform), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("k", [1, 5])
def test_backends_give_identical_setups(k: int) -> None:
    """torch and FAISS CPU give the same triples, uniform values and setup means, bit for bit."""
    pytest.importorskip("faiss")
    train, val = splits("seen")
    by_torch = run(train, val, CLASSES, k=k, seeds=SEEDS, search="versioned")
    by_faiss = run(train, val, CLASSES, k=k, seeds=SEEDS, search="restricted", backend="faiss-cpu")
    assert by_torch.triples == by_faiss.triples
    assert by_torch.uniform == by_faiss.uniform
    assert by_torch.setups() == by_faiss.setups()


def test_setups_average_the_right_triples() -> None:
    """setups() means the §7.3 patterns of the triples dict and ignores triples with three distinct classes."""
    rng = np.random.default_rng(5)
    triples = {key: float(rng.integers(0, 10_000)) / 100 for key in itertools.product(CLASSES, repeat=3)}
    uniform = {(t, s): float(rng.integers(0, 10_000)) / 100 for s in SEEDS for t in CLASSES}
    result = KnnInfluence(CLASSES, 5, triples, uniform, LABELS)
    expected = hand_setups(triples, uniform)
    assert set(result.setups()) == {"all_same", "all_diff", "pos_same", "neg_same", "uniform"}
    assert result.setups() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    a, b, c = CLASSES
    assert expected["all_same"] == pytest.approx((triples[a, a, a] + triples[b, b, b] + triples[c, c, c]) / 3)
    assert expected["pos_same"] == pytest.approx(
        (triples[a, a, b] + triples[a, a, c] + triples[b, b, a] + triples[b, b, c] + triples[c, c, a] + triples[c, c, b]) / 6
    )
    unused = dict(triples)
    for t, p, n in itertools.permutations(CLASSES, 3):
        unused[t, p, n] = -1.0
    assert KnnInfluence(CLASSES, 5, unused, uniform, LABELS).setups() == result.setups()


def test_vote_ties_go_to_lowest_class_and_ignores_missing() -> None:
    """Unweighted counts; a tie goes to the lowest class; -1 entries (padding) do not vote."""
    neighbour_labels = np.array(
        [
            [1, 0, 1, 0, 2],
            [3, 3, -1, -1, -1],
            [2, 1, -1, 1, 2],
            [-1, -1, -1, -1, -1],
            [0, 3, 3, 3, 0],
        ]
    )
    assert vote(neighbour_labels, 4).tolist() == [0, 3, 1, 0, 3]
    assert vote(np.array([[-1, 2], [2, -1]]), 3).tolist() == [2, 2]


@pytest.mark.parametrize("block_bytes", [1, 4096, None])
def test_versioned_search_blocks_and_devices_give_the_brute_force_answer(block_bytes: int | None) -> None:
    """Any query-block size (one query per block up to all at once) gives the same exact neighbours
    as plain restricted searches, planted ties and a label missing from the database included."""
    from bench import exact_search, versioned_search

    train, val = splits("unseen")
    versions = [train.vectors[name] for name in CLASSES]
    mixes = [np.arange(len(train.labels)) % K, np.zeros(len(train.labels), dtype=np.int64)]
    found = versioned_search.VersionedSearch(versions, train.labels, device="cpu", block_bytes=block_bytes).search(
        val.vectors[CLASSES[1]], val.labels, 5, mixes
    )
    unit = normalise(val.vectors[CLASSES[1]])
    for v, version in enumerate(versions):
        for restrict, got in (("same", found.same[v]), ("other", found.other[v])):
            want = exact_search.search(unit, normalise(version), 5, restrict=restrict, query_labels=val.labels,
                                database_labels=train.labels, backend="faiss-cpu")
            assert np.array_equal(got.rows, want.rows), (v, restrict)
            assert np.array_equal(got.scores, want.scores), (v, restrict)
    stacked = np.stack([normalise(version) for version in versions])
    for mix, got in zip(mixes, found.mixed):
        want = exact_search.search(unit, stacked[mix, np.arange(len(mix))], 5, backend="faiss-cpu")
        assert np.array_equal(got.rows, want.rows)
    unseen = val.labels == UNSEEN_LABEL
    assert unseen.any() and (found.same[0].rows[unseen] == -1).all()  # no row shares an unseen label


def planted_lists(rng: np.random.Generator, labels: np.ndarray, query_labels: np.ndarray, k: int, same: bool):
    """A sorted "same" (rows of the query's label) or "other" (rows of any other label) list per
    query, scores on a grid of quarters so that ties are common, some lists cut short."""
    from bench.exact_search import Neighbours

    scores = np.full((len(query_labels), k), -np.inf, dtype=np.float32)
    rows = np.full((len(query_labels), k), -1, dtype=np.int64)
    for q, label in enumerate(query_labels):
        allowed = np.flatnonzero((labels == label) == same)
        length = min(len(allowed), int(rng.integers(0, k + 1)) if rng.random() < 0.2 else k)
        picked = rng.choice(allowed, length, replace=False)
        values = rng.integers(-4, 5, length).astype(np.float32) / 4
        order = np.lexsort((picked, -values))
        scores[q, :length], rows[q, :length] = values[order], picked[order]
    return Neighbours(scores, rows)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_merged_votes_equal_the_vote_of_each_merged_list(k: int) -> None:
    """merged_hits (every (p, n) pair at once, no merged lists) equals the vote of merge(same[p],
    other[n]) for every pair and query: ties across the lists, short lists, a query label with no
    database row, and vote ties between labels included."""
    from bench.knn import correct
    from bench.tasks.knn_influence import merge, merged_hits

    rng = np.random.default_rng(k)
    labels = rng.integers(0, 5, 200)
    query_labels = rng.integers(0, 6, 300)  # label 5: no database row, its "same" lists are empty
    same = [planted_lists(rng, labels, query_labels, k, True) for _ in range(3)]
    other = [planted_lists(rng, labels, query_labels, k, False) for _ in range(2)]
    got = merged_hits(same, other, labels, query_labels, k)
    assert got.shape == (3, 2, len(query_labels))
    for p, n in itertools.product(range(3), range(2)):
        want = correct(merge(same[p], other[n], k), labels, query_labels, 6)
        assert np.array_equal(got[p, n], want), (p, n)
    assert 0 < got.mean() < 1


def test_in_place_normalisation_gives_identical_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """in_place=True normalises the train matrices where they lie, bit for bit as the copying
    path does (in chunks of rows here), and every result is unchanged."""
    monkeypatch.setattr(rows_module, "NORMALISE_ROWS", 7)
    rng = np.random.default_rng(9)
    train, val = splits("seen")
    noisy = {name: (vectors * rng.uniform(0.5, 3.0, (len(vectors), 1))).astype(np.float32) for name, vectors in train.vectors.items()}
    raw = SplitVectors(train.image_ids, train.labels, {name: vectors.copy() for name, vectors in noisy.items()})
    consumed = SplitVectors(train.image_ids, train.labels, {name: vectors.copy() for name, vectors in noisy.items()})
    kept = run(raw, val, CLASSES, k=5, seeds=SEEDS)
    inplace = run(consumed, val, CLASSES, k=5, seeds=SEEDS, in_place=True)
    for name in CLASSES:
        assert np.array_equal(raw.vectors[name], noisy[name])  # the default leaves the caller's vectors alone
        assert np.array_equal(consumed.vectors[name], normalise(noisy[name]))  # bit for bit
    assert kept.triples == inplace.triples and kept.uniform == inplace.uniform
    assert all(np.array_equal(kept.triple_hits[key], inplace.triple_hits[key]) for key in kept.triple_hits)
    odd = rng.standard_normal((50, 33)).astype(np.float32) * rng.uniform(1e-3, 1e3, (50, 1)).astype(np.float32)
    assert np.array_equal(rows_module.normalise_in_place(odd.copy()), normalise(odd))
    assert rows_module.normalise_in_place(odd.astype(np.float64)).dtype == np.float32  # not float32: a normalised copy


def brute_force_lists(database: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: every allowed row fully sorted by (score desc, row asc), first k, padded with (-inf, -1)."""
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    for q in range(len(queries)):
        candidates = np.flatnonzero(allowed[q])
        values = database[candidates] @ queries[q]
        order = sorted(range(len(candidates)), key=lambda i: (-float(values[i]), int(candidates[i])))[:k]
        scores[q, :len(order)], rows[q, :len(order)] = values[order], candidates[order]
    return scores, rows


@pytest.mark.parametrize("block_bytes", [None, 9 * 300 * 25])
@pytest.mark.parametrize("k", [3, 12])
def test_shortlists_with_planted_ties_give_the_brute_force_answer(block_bytes: int | None, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same, other and mixed lists equal a full sort of every allowed row, on exact quarter scores
    with many ties at the k-th place, with unbalanced labels, one label with fewer than k rows,
    query labels no row has, a last block shorter than the others, shortlists split into groups
    and ties ranked over the whole row."""
    from bench import versioned_search

    seen = {"groups": 0, "unsure": 0}
    groups = versioned_search._groups

    def counting_groups(per_query: np.ndarray, budget: int):
        found = list(groups(per_query, max(1, budget // 8)))  # a tighter budget: several groups per block
        seen["groups"] = max(seen["groups"], len(found))
        return found

    ranked = versioned_search._ranked

    def counting_ranked(values, k):
        out = ranked(values, k)
        fetch = min(k + versioned_search.TIE_MARGIN, values.shape[-1])
        if fetch < values.shape[-1] and values.numel():
            top = values.topk(fetch, dim=-1).values
            seen["unsure"] += int(((top[..., -1] == top[..., min(k, fetch) - 1]) & (top[..., -1] > -np.inf)).sum())
        return out

    monkeypatch.setattr(versioned_search, "_groups", counting_groups)
    monkeypatch.setattr(versioned_search, "_ranked", counting_ranked)
    rng = np.random.default_rng(k)
    versions, dim = 3, 10

    def quarter_vectors(count: int) -> np.ndarray:
        """Four entries of +-1: norm 2, so every normalised score is an exact multiple of 1/4."""
        out = np.zeros((count, dim), dtype=np.float32)
        for row in range(count):
            out[row, rng.choice(dim, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
        return out

    labels = np.r_[np.zeros(150), np.ones(100), np.full(48, 2), np.full(2, 3)].astype(np.int64)  # label 3: 2 rows
    rng.shuffle(labels)
    database = [quarter_vectors(len(labels)) for _ in range(versions)]
    query_labels = rng.integers(0, 5, 61)  # label 4: no database row
    queries = quarter_vectors(len(query_labels))
    mixes = [rng.integers(0, versions, len(labels)) for _ in range(2)]
    found = versioned_search.VersionedSearch(database, labels, device="cpu", block_bytes=block_bytes).search(queries, query_labels, k, mixes)
    unit = [normalise(version) for version in database]
    unit_queries = normalise(queries)
    same = query_labels[:, None] == labels[None, :]
    for v in range(versions):
        for allowed, got in ((same, found.same[v]), (~same, found.other[v])):
            scores, rows = brute_force_lists(unit[v], unit_queries, allowed, k)
            assert np.array_equal(got.rows, rows) and np.array_equal(got.scores, scores), v
    for mix, got in zip(mixes, found.mixed):
        mixed = np.stack(unit)[mix, np.arange(len(labels))]
        scores, rows = brute_force_lists(mixed, unit_queries, np.ones_like(same), k)
        assert np.array_equal(got.rows, rows) and np.array_equal(got.scores, scores)
    assert seen["groups"] > 1 and seen["unsure"] > 0  # the paths this test is about were taken
