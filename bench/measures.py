"""bench's statistics on plain arrays, for anyone who already has embeddings: the effects the tasks
mark, each with its value, a 95 % interval, and a one-sided p-value for "no trace", from the same
code the tasks run.

What a mark speaks about: the encoder, on images like these, with the database (train) and the
queries (val or test) both drawn. Each test is an exact permutation test of the null that the
encoder carries no trace, built so that it holds whatever images were drawn:

- processing effects (knn gap, similarity shifts, processing probe): an image's versions are
  exchangeable, so the version labels are permuted within every image, train and val alike;
- camera effects (PairCams): a subject's two shots are exchangeable, so they are swapped within
  subjects;
- label effects (acquisition probe): the labels are exchangeable across units against the fixed
  probe's predictions, so unit labels are permuted (a unit keeps its images together).

Intervals are percentile intervals of a unit bootstrap that redraws every split a statistic
depends on (train and val together where both matter), so bounded statistics stay in range.
p = (1 + permutations at least as extreme) / (1 + permutations); ties count against the effect.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from bench.bootstrap import DEFAULT_PERMUTATIONS, DEFAULT_RESAMPLES, Resampling, counts, percentile_interval

ALPHA = 0.05  # the level marks are made at, after the board's false-discovery control
PERMUTATIONS = DEFAULT_PERMUTATIONS
SEED = 0
TIE = 1e-9  # relative: a permuted statistic this close to the observed one counts as reaching it
GREATER, LESS = "greater", "less"


@dataclass(frozen=True)
class Test:
    """A one-sided permutation test of "no trace" for one statistic; p is None where the test
    could not be run (`reason` says why: such a statistic is shown without a mark)."""

    p: float | None
    alternative: str  # GREATER: a trace raises the statistic; LESS: it lowers it
    reference: float  # the statistic's value with no trace (0, chance), for the reader
    method: str
    permutations: int = 0
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"p": self.p, "alternative": self.alternative, "reference": self.reference, "method": self.method,
                "permutations": self.permutations, "reason": self.reason}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "Test":
        """The test a cell stores; one that does not fit raises ValueError (the cell is then damaged, not read)."""
        if not isinstance(document, Mapping):
            raise ValueError(f"a test must be a JSON object, not {document!r}")
        p = document.get("p")
        if p is not None and not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 < float(p) <= 1.0):
            raise ValueError(f"a test's p-value must lie in (0, 1], not {p!r}")
        if document.get("alternative") not in (GREATER, LESS):
            raise ValueError("a test's alternative must be 'greater' or 'less'")
        try:
            return cls(None if p is None else float(p), str(document["alternative"]), float(document.get("reference", 0.0)),
                       str(document.get("method", "")), int(document.get("permutations", 0)), str(document.get("reason", "")))
        except (TypeError, ValueError):
            raise ValueError("a test's reference and permutations must be numbers") from None


def untested(alternative: str, reference: float, reason: str = "no permutations asked (--permutations 0)") -> Test:
    return Test(None, alternative, reference, "none", 0, reason)


@dataclass(frozen=True)
class Effect:
    """One statistic: its value, its 95 % interval (None without resamples), its test, and its value
    in every resample (for rank ranges)."""

    value: float
    interval: tuple[float, float] | None
    test: Test
    samples: np.ndarray | None = field(default=None, repr=False)

    @property
    def marked(self) -> bool:
        """Significant at ALPHA on its own (a board adjusts for its other tests: bench.report)."""
        return self.test.p is not None and self.test.p <= ALPHA


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def unit_codes(units: Sequence[Any] | np.ndarray | None, count: int) -> np.ndarray:
    """Integer codes 0..U-1 for the unit of each of `count` items (None: every item its own unit)."""
    if units is None:
        return np.arange(count)
    units = np.asarray(units)
    if len(units) != count:
        raise ValueError(f"{len(units)} units given for {count} items")
    return np.unique(units, return_inverse=True)[1].reshape(-1)


def permutation_p(observed: float, permuted: np.ndarray, alternative: str) -> float:
    """(1 + permuted statistics at least as extreme as the observed one) / (1 + permutations)."""
    permuted = np.asarray(permuted, dtype=np.float64)
    slack = TIE * max(1.0, abs(observed))
    extreme = permuted >= observed - slack if alternative == GREATER else permuted <= observed + slack
    return float((1 + np.count_nonzero(extreme)) / (1 + len(permuted)))


def generator(seed: int, purpose: str) -> np.random.Generator:
    from bench.seeding import stable_int

    return np.random.default_rng([seed, stable_int(purpose)])


def within_permutations(generator_: np.random.Generator, items: int, versions: int, count: int) -> np.ndarray:
    """(count, items, versions): a uniform random permutation of the versions for every item."""
    return np.argsort(generator_.random((count, items, versions)), axis=-1)


def unit_draws(units: np.ndarray, resampling: Resampling) -> np.ndarray:
    """(R, U) how often each unit is drawn in each resample (bench.bootstrap's draws)."""
    count = int(units.max()) + 1 if len(units) else 0
    blocks = list(counts(count, resampling)) if count else []
    return np.concatenate(blocks) if blocks else np.zeros((resampling.resamples if count == 0 else 0, count))


def adjust(p_values: Sequence[float | None], method: str = "bh") -> list[float | None]:
    """False-discovery-rate adjusted p-values (None stays None): Benjamini–Hochberg ("bh"), or
    Benjamini–Yekutieli ("by", valid under any dependence), or none ("none")."""
    tested = [(i, p) for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not tested:
        return out
    if method == "none":
        for i, p in tested:
            out[i] = p
        return out
    m = len(tested)
    factor = float(np.sum(1.0 / np.arange(1, m + 1))) if method == "by" else 1.0
    order = sorted(tested, key=lambda item: item[1])
    running = 1.0
    for rank in range(m, 0, -1):
        index, p = order[rank - 1]
        running = min(running, p * m * factor / rank)
        out[index] = min(1.0, running)
    return out


# ---------------------------------------------------------------------------------------------
# kNN: pos-same − neg-same
# ---------------------------------------------------------------------------------------------


def _unit(vectors: np.ndarray) -> np.ndarray:
    from bench.vectors import normalise

    return normalise(vectors)


@dataclass(frozen=True)
class KnnScores:
    """For every query under every version a, the database images that can enter its top k under
    any mix of database versions: a column whose best score over the versions is below the k-th
    largest of the columns' worst scores never can. Versions of one image embed close together,
    so a few dozen candidates per query stand in for the whole database, exactly."""

    columns: np.ndarray  # (K, Q, L) train rows, by their best score over the versions, highest first
    scores: np.ndarray  # (K, Q, L, K) float32: query i under a against candidate column under b
    bound: np.ndarray  # (K, Q) float32: no other column scores above it under any version
    narrow: int  # the first `narrow` candidates suffice for any mix of versions when no row is dropped
    narrow_bound: np.ndarray  # (K, Q) float32: the bound beyond them
    train: tuple[np.ndarray, ...]  # L2-normalised, for a query whose resampled top k leaves the candidates
    val: tuple[np.ndarray, ...]
    train_labels: np.ndarray
    val_labels: np.ndarray
    k: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def versions(self) -> int:
        return self.scores.shape[0]

    def gap(self, query_versions: np.ndarray, database_versions: np.ndarray, weights: np.ndarray | None = None,
            query_weights: np.ndarray | None = None) -> float:
        """pos-same − neg-same in %, the mean over ordered version pairs (t, o), t ≠ o, when query i
        stands under version query_versions[i, t] for label t and train row j under
        database_versions[j, v] for label v, each train row counted weights[j] times (a resample)."""
        per_query = self.per_query_gap(query_versions, database_versions, weights)
        query_weights = np.ones(len(per_query)) if query_weights is None else query_weights
        total = query_weights.sum()
        return float(100.0 * (query_weights @ per_query) / total) if total else float("nan")

    def per_query_gap(self, query_versions: np.ndarray, database_versions: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Each query's pos-same hit minus its neg-same hit, averaged over the pairs (t, o)."""
        pairs = np.array(list(itertools.permutations(range(self.versions), 2)))
        test = np.concatenate([pairs[:, 0], pairs[:, 0]])
        positive = np.concatenate([pairs[:, 0], pairs[:, 1]])  # pos-same then neg-same
        negative = np.concatenate([pairs[:, 1], pairs[:, 0]])
        hits = self.hits(query_versions, database_versions, test, positive, negative, weights)  # (2 · pairs, Q)
        return (hits[: len(pairs)].astype(np.float64) - hits[len(pairs):]).mean(axis=0)

    def hits(self, query_versions: np.ndarray, database_versions: np.ndarray, test: np.ndarray, positive: np.ndarray,
             negative: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """(setups, Q) whether each query's vote is right when it stands under version label
        test[s], its class's database images under label positive[s] and the others under
        negative[s]."""
        queries = len(self.val_labels)
        columns_all, labels_all, same_all, scores_all, bound = self._prefix(weights is None)
        used = columns_all.shape[1]
        chosen = query_versions[:, test].T  # (S, Q): the stored version each query stands under
        at = chosen * queries + np.arange(queries)[None, :]  # (S, Q): the (version, query) row of the candidates
        columns, labels = columns_all[at], labels_all[at]  # (S, Q, used)
        label_version = np.where(same_all[at], positive[:, None, None], negative[:, None, None])
        stored = database_versions.reshape(-1)[columns * self.versions + label_version]
        scores = scores_all[(at[..., None] * used + np.arange(used)) * self.versions + stored]
        counted = None if weights is None else weights[columns]
        right, exact = _votes(scores, counted, labels, self.val_labels, self.k, bound[at], columns)
        for s, q in zip(*np.nonzero(~exact)):  # ties at the k-th place, or a resample that dropped too many candidates
            right[s, q] = self._full_hit(q, chosen[s, q], database_versions, test[s], positive[s], negative[s], weights)
        return right

    def resampled_gaps(self, weights: np.ndarray, query_weights: np.ndarray, prefix: int = 3) -> np.ndarray:
        """The gap (%) under each row of `weights` (R, N) train counts and `query_weights` (R, Q),
        the versions as stored. Each setup's candidates are ranked once; a resample only re-counts
        the first `prefix` × k of them, and a query whose k places they do not settle is voted in full."""
        pairs = np.array(list(itertools.permutations(range(self.versions), 2)))
        test = np.concatenate([pairs[:, 0], pairs[:, 0]])
        positive = np.concatenate([pairs[:, 0], pairs[:, 1]])
        negative = np.concatenate([pairs[:, 1], pairs[:, 0]])
        queries, width = len(self.val_labels), self.columns.shape[2]
        identity_d = np.tile(np.arange(self.versions), (len(self.train_labels), 1))
        at = test[:, None] * queries + np.arange(queries)[None, :]
        columns = self.columns.reshape(-1, width)[at]
        same = self.train_labels[columns] == self.val_labels[None, :, None]
        stored = np.where(same, positive[:, None, None], negative[:, None, None])
        scores = self.scores.reshape(-1)[(at[..., None] * width + np.arange(width)) * self.versions + stored]
        order = np.lexsort((columns, -scores), axis=-1)[..., : min(width, prefix * self.k)]  # ties: the lower row first
        columns, scores = np.take_along_axis(columns, order, axis=-1), np.take_along_axis(scores, order, axis=-1)
        labels = self.train_labels[columns]
        bound = self.bound.reshape(-1)[at]

        def one(counted_all: np.ndarray, query_weight: np.ndarray) -> float:
            counted = counted_all[columns]
            voting = np.argsort(counted == 0, axis=-1, kind="stable")[..., : self.k]  # the first k drawn candidates, in rank order
            drawn, drawn_labels = np.take_along_axis(counted, voting, axis=-1), np.take_along_axis(labels, voting, axis=-1)
            before = np.cumsum(drawn, axis=-1) - drawn
            votes = np.clip(self.k - before, 0, drawn)
            last = np.where(votes > 0, np.take_along_axis(scores, voting, axis=-1), np.inf).min(axis=-1)
            settled = ((votes.sum(axis=-1) == self.k) & (last > bound)) | (query_weight == 0)[None, :]  # an undrawn query counts for nothing
            totals = _label_totals(drawn_labels, votes)
            mine = drawn_labels == self.val_labels[None, :, None]
            own = np.where(mine, totals, 0).max(axis=-1)
            rival = np.where(mine | (votes == 0), 0, totals)
            best = rival.max(axis=-1)
            lowest = np.where((rival == best[..., None]) & (best[..., None] > 0), drawn_labels, np.iinfo(np.int64).max).min(axis=-1)
            right = (own > best) | ((own == best) & (own > 0) & (self.val_labels[None, :] < lowest))
            for s, q in zip(*np.nonzero(~settled)):
                right[s, q] = self._full_hit(q, test[s], identity_d, test[s], positive[s], negative[s], counted_all)
            per_query = (right[: len(pairs)].astype(np.float64) - right[len(pairs):]).mean(axis=0)
            total = query_weight.sum()
            return float(100.0 * (query_weight @ per_query) / total) if total else float("nan")

        with _threads() as pool:
            return np.array(list(pool.map(one, weights, query_weights)), dtype=np.float64)

    def _prefix(self, narrow: bool) -> tuple[np.ndarray, ...]:
        """(columns, labels, same class, flat scores, bound) of the candidates every (version, query)
        row reads: the narrow prefix (no row dropped) or all of them, contiguous for fast gathers."""
        key = "narrow" if narrow else "wide"
        if key not in self._cache:
            used = self.narrow if narrow else self.columns.shape[2]
            columns = np.ascontiguousarray(self.columns[..., :used]).reshape(-1, used)
            labels = self.train_labels[columns]
            same = labels == np.tile(self.val_labels, self.versions)[:, None]
            scores = np.ascontiguousarray(self.scores[:, :, :used]).reshape(-1)
            self._cache[key] = (columns, labels, same, scores, (self.narrow_bound if narrow else self.bound).reshape(-1))
        return self._cache[key]

    def _full_hit(self, query: int, version: int, database_versions: np.ndarray, test: int, positive: int, negative: int,
                  weights: np.ndarray | None) -> bool:
        """One query's vote over the whole database, ties at the k-th place broken by the lower row."""
        rows = np.arange(len(self.train_labels))
        same = self.train_labels == self.val_labels[query]
        stored = database_versions[rows, np.where(same, positive, negative)]
        if "stack" not in self._cache:
            self._cache["stack"] = np.stack(self.train)  # (K, N, D), once
        scores = self._cache["stack"][stored, rows] @ self.val[version][query]
        counted = np.ones(len(rows), dtype=np.int64) if weights is None else weights
        order = np.argsort(-np.where(counted > 0, scores, -np.inf), kind="stable")
        before = np.cumsum(counted[order]) - counted[order]
        votes = np.clip(self.k - before, 0, counted[order])
        totals = np.bincount(self.train_labels[order], weights=votes, minlength=int(self.train_labels.max()) + 1)
        return int(np.argmax(totals)) == int(self.val_labels[query])


def _votes(scores: np.ndarray, counted: np.ndarray | None, labels: np.ndarray, query_labels: np.ndarray, k: int,
           bound: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, exact), each (S, Q): whether the unweighted vote of the top k (a row counted w times
    fills w places, tied rows by the lower row `columns`; vote ties go to the lowest label) names the
    query's label, and whether that is settled here: no tie at the k-th place, every place filled by
    a candidate scoring above `bound`."""
    if counted is not None:
        scores = np.where(counted > 0, scores, -np.inf)
    k = min(k, scores.shape[-1])
    top = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    top_scores = np.take_along_axis(scores, top, axis=-1)
    kth = top_scores.min(axis=-1)
    exact = ((scores >= kth[..., None]).sum(axis=-1) == k) & (kth > bound)
    top_labels = np.take_along_axis(labels, top, axis=-1)
    if counted is None:
        votes = np.ones(top.shape, dtype=np.int64)
    else:  # places go by score, so a row counted twice can push the last ones out
        order = np.lexsort((np.take_along_axis(columns, top, axis=-1), -top_scores), axis=-1)  # a tie's places go to the lower row
        top_counted = np.take_along_axis(np.take_along_axis(counted, top, axis=-1), order, axis=-1)
        top_labels = np.take_along_axis(top_labels, order, axis=-1)
        before = np.cumsum(top_counted, axis=-1) - top_counted
        votes = np.clip(k - before, 0, top_counted)
        exact &= votes.sum(axis=-1) == k
    totals = _label_totals(top_labels, votes)
    mine = top_labels == query_labels[None, :, None]
    own = np.where(mine, totals, 0).max(axis=-1)
    rival = np.where(mine | (votes == 0), 0, totals)
    best = rival.max(axis=-1)
    lowest = np.where((rival == best[..., None]) & (best[..., None] > 0), top_labels, np.iinfo(np.int64).max).min(axis=-1)
    right = (own > best) | ((own == best) & (own > 0) & (query_labels[None, :] < lowest))
    return right, exact


def _label_totals(labels: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """(..., k) the votes of each entry's label among the k entries: a float32 product, exact for
    counts this small and twice as fast as summing integer products."""
    same = (labels[..., :, None] == labels[..., None, :]).astype(np.float32)
    return np.matmul(same, votes[..., None].astype(np.float32))[..., 0].astype(np.int64)


def knn_scores(train: Sequence[np.ndarray], train_labels: np.ndarray, val: Sequence[np.ndarray], val_labels: np.ndarray,
               k: int, margin: int = 2, block: int = 256) -> KnnScores:
    """Every query's candidates under every version (see KnnScores), `margin` × k beyond the
    fewest that are exact for any mix of versions, so most resamples stay among them."""
    train_unit, val_unit = tuple(_unit(v) for v in train), tuple(_unit(v) for v in val)
    versions, queries, database = len(train_unit), len(val_unit[0]), len(train_unit[0])
    needed = np.zeros((versions, queries), dtype=np.int64)
    for a in range(versions):
        for start in range(0, queries, block):
            full = np.stack([val_unit[a][start:start + block] @ t.T for t in train_unit])  # (K, B, N)
            worst, best = full.min(axis=0), full.max(axis=0)
            kth = -np.partition(-worst, min(k, database) - 1, axis=1)[:, min(k, database) - 1]
            needed[a, start:start + block] = (best >= kth[:, None]).sum(axis=1)
    narrow = int(min(database, needed.max()))
    width = int(min(database, needed.max() + margin * k))
    columns = np.empty((versions, queries, width), dtype=np.int64)
    scores = np.empty((versions, queries, width, versions), dtype=np.float32)
    bounds = np.full((2, versions, queries), -np.inf, dtype=np.float32)  # beyond the narrow prefix, beyond all candidates
    for a in range(versions):
        for start in range(0, queries, block):
            full = np.stack([val_unit[a][start:start + block] @ t.T for t in train_unit])
            best = full.max(axis=0)
            order = np.argsort(-best, axis=1, kind="stable")
            rows = np.arange(len(best))[:, None]
            columns[a, start:start + block] = order[:, :width]
            scores[a, start:start + block] = full[:, rows, order[:, :width]].transpose(1, 2, 0)
            ranked = np.take_along_axis(best, order, axis=1)
            for which, used in enumerate((narrow, width)):
                if used < database:
                    bounds[which, a, start:start + block] = ranked[:, used]
    return KnnScores(columns, scores, bounds[1], narrow, bounds[0], train_unit, val_unit, np.asarray(train_labels),
                     np.asarray(val_labels), k)


def knn_gap(train: Sequence[np.ndarray], train_labels: np.ndarray, val: Sequence[np.ndarray], val_labels: np.ndarray, k: int, *,
            train_units: Sequence[Any] | None = None, val_units: Sequence[Any] | None = None,
            permutations: int = PERMUTATIONS, resampling: Resampling = Resampling(), seed: int = SEED) -> Effect:
    """knn-influence's pos-same − neg-same gap (%) on vectors per version (train[v]: (N, D), val[v]:
    (Q, D), the same K versions in the same order), its interval (units redrawn in train and val
    together: a unit's train images and its queries come and go as one) and its test (the versions
    permuted within every image)."""
    found = knn_scores(train, train_labels, val, val_labels, k)
    identity_train = np.tile(np.arange(found.versions), (len(train_labels), 1))
    identity_val = np.tile(np.arange(found.versions), (len(val_labels), 1))
    point = found.gap(identity_val, identity_train)
    test = knn_test(found, point, permutations, seed)
    samples = knn_resamples(found, train_units, val_units, resampling)
    return Effect(point, percentile_interval(samples, point) if samples is not None else None, test, samples)


PERMUTATION_BATCH = 8  # permutations evaluated between two looks at the stopping rule


def _threads():
    """A pool for the heavy per-permutation and per-resample work: numpy releases the GIL in it."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))


def knn_test(found: KnnScores, point: float, permutations: int, seed: int, enough: int = 10) -> Test:
    """The gap under up to `permutations` random permutations of every image's versions, stopping
    once `enough` of them reach the observed gap (Besag and Clifford's sequential p-value, h / n:
    valid at any stop, and a null-like encoder stops after a few dozen)."""
    if permutations <= 0:
        return untested(GREATER, 0.0)
    draws = generator(seed, "knn-gap-permutation")
    slack = TIE * max(1.0, abs(point))
    reached = drawn = 0
    with _threads() as pool:
        while drawn < permutations and reached < enough:
            batch = min(PERMUTATION_BATCH, permutations - drawn)
            orders = [(within_permutations(draws, len(found.val_labels), found.versions, 1)[0],
                       within_permutations(draws, len(found.train_labels), found.versions, 1)[0]) for _ in range(batch)]
            gaps = list(pool.map(lambda pair: found.gap(*pair), orders))
            for gap in gaps:  # in draw order, so the stop does not depend on the threads
                if drawn >= permutations or reached >= enough:
                    break
                reached += gap >= point - slack
                drawn += 1
    p = reached / drawn if reached >= enough else (1 + reached) / (1 + drawn)
    return Test(float(p), GREATER, 0.0, "exact permutation: every image's processing versions permuted, train and val "
                f"(sequential: stops after {enough} permuted gaps reach the observed one)", drawn)


def knn_resamples(found: KnnScores, train_units: Sequence[Any] | None, val_units: Sequence[Any] | None,
                  resampling: Resampling) -> np.ndarray | None:
    """The gap in every resample of units (None without resamples)."""
    if not resampling.enabled:
        return None
    train_codes, val_codes = _shared_codes(train_units, len(found.train_labels), val_units, len(found.val_labels))
    drawn = unit_draws(np.concatenate([train_codes, val_codes]), resampling)
    return found.resampled_gaps(drawn[:, train_codes].astype(np.int64), drawn[:, val_codes])


def _shared_codes(first: Sequence[Any] | None, first_count: int, second: Sequence[Any] | None, second_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit codes over two splits together: a unit named in both is one unit (crops of one photo in
    train and val); without names every image is its own unit."""
    names = np.concatenate([
        np.asarray(first, dtype=object) if first is not None else np.array([f"\0a{i}" for i in range(first_count)], dtype=object),
        np.asarray(second, dtype=object) if second is not None else np.array([f"\0b{i}" for i in range(second_count)], dtype=object),
    ])
    codes = np.unique(names.astype(str), return_inverse=True)[1].reshape(-1)
    return codes[:first_count], codes[first_count:]


# ---------------------------------------------------------------------------------------------
# Similarity: the shift that sharing the query's processing causes
# ---------------------------------------------------------------------------------------------

SHIFTS = ("shift_semantic_same", "shift_semantic_diff")


def similarity_shifts(train: Sequence[np.ndarray], train_labels: np.ndarray, val: Sequence[np.ndarray], val_labels: np.ndarray, *,
                      train_units: Sequence[Any] | None = None, val_units: Sequence[Any] | None = None,
                      permutations: int = PERMUTATIONS, resampling: Resampling = Resampling(), seed: int = SEED) -> dict[str, Effect]:
    """Mean cosine of a query under version a to database images under a, minus under b, among
    database images of the query's class (shift_semantic_same) and of the others (…_diff). train
    and val hold the two versions (a, b). Test: every image's two versions swapped at random;
    interval: units redrawn in train and val together (first-order, from per-image sums)."""
    queries = [_unit(v) for v in val]
    database = [_unit(v) for v in train]
    same = (np.asarray(val_labels)[:, None] == np.asarray(train_labels)[None, :])
    # difference[x][i, j]: cos(query i under x, image j under a) − cos(query i under x, image j under b)
    difference = [queries[x] @ database[0].T - queries[x] @ database[1].T for x in (0, 1)]
    sizes = {"shift_semantic_same": same, "shift_semantic_diff": ~same}
    points = {name: _masked_mean(difference[0], mask) for name, mask in sizes.items()}
    draws = generator(seed, "similarity-permutation")
    effects = {}
    flips_val = draws.integers(0, 2, (permutations, len(val_labels)))
    signs_train = 1.0 - 2.0 * draws.integers(0, 2, (permutations, len(train_labels)))
    train_codes, val_codes = _shared_codes(train_units, len(train_labels), val_units, len(val_labels))
    drawn = unit_draws(np.concatenate([train_codes, val_codes]), resampling) if resampling.enabled else None
    for name, mask in sizes.items():
        weighted = [np.where(mask, d, 0.0).astype(np.float64) for d in difference]
        pairs = mask.sum()
        # a swapped database image flips its sign; a swapped query reads its other version's row
        by_version = [w @ signs_train.T for w in weighted]  # (Q, P)
        permuted = np.where(flips_val.T == 1, by_version[1], by_version[0]).sum(axis=0) / pairs if pairs else np.full(permutations, np.nan)
        point = points[name]
        test = (Test(permutation_p(point, permuted, GREATER), GREATER, 0.0,
                     "exact permutation: every image's two processing versions swapped at random, train and val", permutations)
                if pairs and permutations > 0 else untested(GREATER, 0.0, *(() if pairs else ("no pairs of this kind",))))
        samples = _two_way(weighted[0], mask, train_codes, val_codes, drawn) if drawn is not None and pairs else None
        effects[name] = Effect(point, percentile_interval(samples, point) if samples is not None else None, test, samples)
    return effects


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    total = mask.sum()
    return float(np.where(mask, values, 0.0).sum() / total) if total else float("nan")


def _two_way(weighted: np.ndarray, mask: np.ndarray, train_codes: np.ndarray, val_codes: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """A ratio of double sums over (query, database image) pairs in every resample of units, to
    first order: the sum moves by each drawn unit's row and column sums (the pair-level remainder
    shrinks as 1 / (queries × database))."""
    units = drawn.shape[1]
    numerator = _unit_margins(weighted, train_codes, val_codes, units)
    denominator = _unit_margins(mask.astype(np.float64), train_codes, val_codes, units)
    excess = drawn - 1.0
    top = weighted.sum() + excess @ numerator
    bottom = mask.sum() + excess @ denominator
    with np.errstate(invalid="ignore", divide="ignore"):
        return top / bottom


def _unit_margins(values: np.ndarray, train_codes: np.ndarray, val_codes: np.ndarray, units: int) -> np.ndarray:
    """Per unit, the sum of its queries' rows plus its database images' columns."""
    return (np.bincount(val_codes, weights=values.sum(axis=1), minlength=units)
            + np.bincount(train_codes, weights=values.sum(axis=0), minlength=units))


# ---------------------------------------------------------------------------------------------
# PairCams: same − different recall@1
# ---------------------------------------------------------------------------------------------


PAIR_DIRECTIONS = ("dslr_compact", "phone")  # query camera class 0, 1
PAIR_BLOCK = 1024  # queries per score block: memory stays at block × collection


def beaters(queries: np.ndarray, own: np.ndarray, partners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query i (= own[i]), which subjects j ≠ i have a distractor scoring at least partners[i]
    (the target): own[j] in the "same" collection, partners[j] in the "different" one. One product
    per block scores both collections, so the target's score is the same number in both
    comparisons; a tie with a distractor counts as a miss."""
    count = len(own)
    same = np.zeros((len(queries), count), dtype=bool)
    different = np.zeros((len(queries), count), dtype=bool)
    both = np.concatenate([own, partners])
    for start in range(0, len(queries), PAIR_BLOCK):
        stop = min(start + PAIR_BLOCK, len(queries))
        scores = queries[start:stop] @ both.T
        rows = np.arange(stop - start)
        mine = np.arange(start, stop)
        target = scores[rows, count + mine].copy()
        scores[rows, mine] = -np.inf  # the query itself
        scores[rows, count + mine] = -np.inf  # the target, compared separately
        same[start:stop] = scores[:, :count] >= target[:, None]
        different[start:stop] = scores[:, count:] >= target[:, None]
    return same, different


def pair_resamples(same_beaters: Mapping[str, np.ndarray], different_beaters: Mapping[str, np.ndarray], units: np.ndarray,
                   resampling: Resampling) -> dict[str, np.ndarray]:
    """recall@1 (%) of every collection and direction, their means and same − different, in every
    resample of units (codes per subject). A resample redraws queries and distractors together, as
    a new sample of subjects would: a drawn query is a hit when no drawn subject beats its target
    (a subject is never its own distractor)."""
    found = [matrix.T.astype(np.float32) for matrix in (*(same_beaters[d] for d in PAIR_DIRECTIONS),
                                                        *(different_beaters[d] for d in PAIR_DIRECTIONS))]
    blocks = []
    for drawn_units in counts(int(units.max()) + 1, resampling):
        drawn = drawn_units[:, units]  # (B, subjects): a subject comes with its unit
        blocks.append(np.stack([_resampled_recall(drawn, matrix) for matrix in found], axis=1))
    recalls = np.concatenate(blocks)
    names = [f"recall_at_1.{collection}_{d}" for collection in ("same", "different") for d in PAIR_DIRECTIONS]
    samples = {name: recalls[:, i] for i, name in enumerate(names)}
    samples["recall_at_1.same"] = recalls[:, :2].mean(axis=1)
    samples["recall_at_1.different"] = recalls[:, 2:].mean(axis=1)
    samples["gap_same_minus_different"] = samples["recall_at_1.same"] - samples["recall_at_1.different"]
    return samples


def _resampled_recall(drawn: np.ndarray, beaters_by_column: np.ndarray) -> np.ndarray:
    """(B,) recall@1 in % of each resample: the drawn queries none of whose beaters was drawn;
    `beaters_by_column`: (subjects, queries) float32, subject j beats query i's target at [j, i]."""
    beaten = (drawn.astype(np.float32) @ beaters_by_column) > 0
    return 100.0 * (drawn * ~beaten).sum(axis=1) / drawn.sum(axis=1)


def paircams_gap(first: np.ndarray, second: np.ndarray, *, units: Sequence[Any] | None = None, permutations: int = PERMUTATIONS,
                 resampling: Resampling = Resampling(), seed: int = SEED) -> Effect:
    """recall@1 (%) with distractors of the query's camera class minus with the target's, both
    query directions averaged; first[i] and second[i] are subject i's shots by camera class 0 and
    1. Test: every subject's two shots swapped at random (the camera leaves no trace: they are
    exchangeable); interval: subjects (or their `units`) redrawn as queries and distractors."""
    first, second = _unit(first), _unit(second)
    count = len(first)
    both = np.concatenate([first, second])
    gram = both @ both.T
    point = _paircams_gap(gram, np.zeros(count, dtype=np.int64))
    draws = generator(seed, "paircams-permutation")
    permuted = np.array([_paircams_gap(gram, draws.integers(0, 2, count)) for _ in range(permutations)])
    test = (Test(permutation_p(point, permuted, LESS), LESS, 0.0,
                 "exact permutation: every subject's two shots swapped between the camera classes at random", permutations)
            if permutations > 0 else untested(LESS, 0.0))
    if not resampling.enabled:
        return Effect(point, None, test)
    same, different = {}, {}
    for direction, (own, partners) in zip(PAIR_DIRECTIONS, ((first, second), (second, first))):
        same[direction], different[direction] = beaters(own, own, partners)
    samples = pair_resamples(same, different, unit_codes(units, count), resampling)["gap_same_minus_different"]
    return Effect(point, percentile_interval(samples, point), test, samples)


def _paircams_gap(gram: np.ndarray, swapped: np.ndarray) -> float:
    """same − different recall@1 (%) from the shots' Gram matrix (class-0 shots first) when subject
    i's shots trade camera classes where swapped[i]."""
    count = len(swapped)
    subjects = np.arange(count)
    first = np.where(swapped == 1, count + subjects, subjects)
    second = np.where(swapped == 1, subjects, count + subjects)
    recalls = []
    for queries, partners in ((first, second), (second, first)):
        scores_same = gram[np.ix_(queries, queries)]
        scores_other = gram[np.ix_(queries, partners)]
        target = scores_other[subjects, subjects].copy()
        np.fill_diagonal(scores_same, -np.inf)
        np.fill_diagonal(scores_other, -np.inf)
        recalls.append((~(scores_same >= target[:, None]).any(axis=1)).mean() - (~(scores_other >= target[:, None]).any(axis=1)).mean())
    return float(100.0 * np.mean(recalls))


# ---------------------------------------------------------------------------------------------
# Probes: accuracy against a fixed probe's predictions
# ---------------------------------------------------------------------------------------------


def processing_probe_accuracy(predictions: np.ndarray, versions: int, *, units: Sequence[Any] | None = None,
                              permutations: int = PERMUTATIONS, resampling: Resampling = Resampling(), seed: int = SEED) -> Effect:
    """Top-1 accuracy (%) of processing probes on a test set holding every image once per version:
    predictions (S, versions · images), row v · images + i is image i under version v (label v).
    Test: the version labels permuted within every image against the fixed predictions (no trace:
    an image's versions are exchangeable); interval: test units redrawn (the probes are fixed)."""
    predictions = np.asarray(predictions).reshape(len(predictions), versions, -1)  # (S, versions, images)
    images = predictions.shape[2]
    truth = np.arange(versions)[None, :, None]
    point = float(100.0 * (predictions == truth).mean())
    # agreement[s, v, i, w]: probe s names version w for image i under version v
    hits_by_label = np.stack([(predictions == w).mean(axis=0) for w in range(versions)], axis=-1)  # (versions, images, w)
    draws = generator(seed, "probe-processing-permutation")
    permuted = np.empty(permutations)
    image_index = np.arange(images)[:, None]
    for start in range(0, permutations, 64):
        block = within_permutations(draws, images, versions, min(64, permutations - start))  # (B, images, versions)
        # label of image i's row under version v is block[b, i, v]
        gathered = hits_by_label.transpose(1, 0, 2)[image_index, np.arange(versions)[None, :], block]  # (B, images, versions)
        permuted[start:start + len(block)] = 100.0 * gathered.mean(axis=(1, 2))
    test = (Test(permutation_p(point, permuted, GREATER), GREATER, 100.0 / versions,
                 "exact permutation: each test image's version labels permuted against the probes' fixed predictions", permutations)
            if permutations > 0 else untested(GREATER, 100.0 / versions))
    per_image = 100.0 * (predictions == truth).mean(axis=(0, 1))
    return _resampled_mean(per_image, units, resampling, test, point)


def _resampled_mean(per_item: np.ndarray, units: Sequence[Any] | None, resampling: Resampling, test: Test, point: float) -> Effect:
    """The mean of a per-item statistic with its interval (units redrawn) and `test`."""
    if not resampling.enabled:
        return Effect(point, None, test)
    samples = unit_means({"mean": per_item}, units, resampling)["mean"]
    return Effect(point, percentile_interval(samples, point), test, samples)


def unit_means(per_item: Mapping[str, np.ndarray], units: Sequence[Any] | None, resampling: Resampling) -> dict[str, np.ndarray]:
    """The mean of each per-item statistic (all of one length) in every resample of units: a unit's
    items come and go together, so a resample holds as many items as its units carry."""
    names = list(per_item)
    count = len(per_item[names[0]]) if names else 0
    codes = unit_codes(units, count)
    drawn = unit_draws(codes, resampling)
    sizes = drawn @ np.bincount(codes, minlength=drawn.shape[1]).astype(np.float64)
    return {name: (drawn @ np.bincount(codes, weights=np.asarray(per_item[name], dtype=np.float64), minlength=drawn.shape[1])) / sizes
            for name in names}


def label_probe_accuracy(predictions: np.ndarray, labels: np.ndarray, *, units: Sequence[Any] | None = None,
                         permutations: int = PERMUTATIONS, resampling: Resampling = Resampling(), seed: int = SEED) -> dict[str, Effect]:
    """Top-1 accuracy (probe_acc1, against the majority share) and mean per-class accuracy
    (probe_mean_class_acc, against chance over the classes present) of one probe's predictions on
    test images with `labels`. Test: unit labels permuted against the fixed predictions (a probe
    that ignores the images, e.g. one naming the largest class for all, is never marked, at any
    class size); interval: units redrawn within each class, so every class keeps its count."""
    predictions, labels = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    codes = unit_codes(units, len(labels))
    unit_label = np.zeros(codes.max() + 1, dtype=labels.dtype)
    unit_label[codes] = labels
    mixed = not np.array_equal(unit_label[codes], labels)
    if mixed:  # a unit spanning classes cannot carry one label: resample its classes' parts apart, and test nothing
        codes = unit_codes(np.char.add(np.char.add(codes.astype(str), "|"), labels.astype(str)), len(labels))
        unit_label = np.zeros(codes.max() + 1, dtype=labels.dtype)
        unit_label[codes] = labels
        permutations = 0
    present = np.unique(labels)
    counts_ = np.bincount(labels)
    references = {"probe_acc1": float(100.0 * counts_.max() / counts_.sum()), "probe_mean_class_acc": 100.0 / len(present)}

    def statistics(assigned: np.ndarray) -> np.ndarray:
        """(B, 2) top-1 and mean per-class accuracy when image rows carry labels `assigned` (B, n)."""
        hits = assigned == predictions[None, :]
        per_class = np.stack([(hits & (assigned == c)).sum(axis=1) / (assigned == c).sum(axis=1) for c in present], axis=1)
        return 100.0 * np.stack([hits.mean(axis=1), per_class.mean(axis=1)], axis=1)

    observed = statistics(labels[None, :])[0]
    draws = generator(seed, "probe-label-permutation")
    permuted = np.concatenate([statistics(unit_label[np.argsort(draws.random((min(256, permutations - s), len(unit_label))), axis=1)][:, codes])
                               for s in range(0, permutations, 256)]) if permutations else np.zeros((0, 2))
    samples = _stratified_statistics(predictions, labels, codes, present, resampling) if resampling.enabled else None
    effects = {}
    for column, name in enumerate(("probe_acc1", "probe_mean_class_acc")):
        test = (Test(permutation_p(float(observed[column]), permuted[:, column], GREATER), GREATER, references[name],
                     "exact permutation: test labels permuted across units against the probe's fixed predictions", permutations)
                if permutations > 0 else untested(GREATER, references[name], *(
                    ("some units hold images of several classes (--groups), so labels cannot be permuted by unit",) if mixed else ())))
        point = float(observed[column])
        found = samples[:, column] if samples is not None else None
        effects[name] = Effect(point, percentile_interval(found, point) if found is not None else None, test, found)
    return effects


def _stratified_statistics(predictions: np.ndarray, labels: np.ndarray, codes: np.ndarray, present: np.ndarray,
                           resampling: Resampling) -> np.ndarray:
    """(R, 2) top-1 and mean per-class accuracy with the units of every class redrawn within it."""
    hits = (predictions == labels).astype(np.float64)
    units = codes.max() + 1
    unit_hits = np.bincount(codes, weights=hits, minlength=units)
    unit_sizes = np.bincount(codes, minlength=units).astype(np.float64)
    unit_class = np.zeros(units, dtype=labels.dtype)
    unit_class[codes] = labels
    drawn = np.concatenate(list(counts(units, resampling, strata=unit_class)))  # (R, U), within each class
    correct, seen = drawn @ unit_hits, drawn @ unit_sizes
    per_class = np.stack([(drawn[:, unit_class == c] @ unit_hits[unit_class == c]) / (drawn[:, unit_class == c] @ unit_sizes[unit_class == c])
                          for c in present], axis=1)
    return 100.0 * np.stack([correct / seen, per_class.mean(axis=1)], axis=1)


__all__ = [
    "ALPHA", "DEFAULT_RESAMPLES", "Effect", "PERMUTATIONS", "Resampling", "Test", "adjust", "knn_gap", "label_probe_accuracy",
    "paircams_gap", "percentile_interval", "permutation_p", "processing_probe_accuracy", "similarity_shifts",
]
