"""Exact top-k inner-product search: FAISS GPU, torch (CUDA or CPU), FAISS CPU. The only FAISS caller.

Every backend returns the same neighbours for the same scores: candidates are ordered by
(score descending, database row ascending), and a query whose k-th score is tied with
candidates that were not fetched is searched again with a wider k until the tie is inside.
Restricted searches keep, per query, only database rows whose label equals ("same") or differs
from ("other") the query's label, without ever building a per-query database. An "other" search
whose excluded rows are few runs once over the whole database, fetching that many extra
candidates and dropping same-label rows; otherwise each query label is searched on its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np

from bench.errors import UsageError

if TYPE_CHECKING:
    import torch

Restrict = Literal["none", "same", "other"]
BACKENDS: tuple[str, ...] = ("auto", "faiss-gpu", "torch", "faiss-cpu")
TIE_MARGIN = 8  # extra candidates fetched so that most boundary ties resolve in one pass
FAISS_GPU_MAX_K = 2048
OVERFETCH_MAX = 1024  # "other" searches over-fetch and filter when the excluded rows are this few
SCORE_BLOCK_BYTES = 256 << 20  # torch backend: at most this much score matrix per query block


@dataclass(frozen=True)
class Neighbours:
    scores: np.ndarray  # (Q, k) float32, best first; -inf where fewer than k rows are allowed
    rows: np.ndarray  # (Q, k) int64 database rows; -1 where fewer than k rows are allowed


def resolve_backend(requested: str = "auto") -> str:
    """auto: FAISS GPU if a GPU build sees a GPU, else torch on CUDA, else FAISS CPU. faiss-gpu
    asked for by name where FAISS has no GPU is a UsageError that says how to get it."""
    if requested not in BACKENDS:
        raise UsageError(f"unknown search backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested == "faiss-gpu":
        refusal = _faiss_gpu_refusal()
        if refusal:
            raise UsageError(refusal)
    if requested != "auto":
        return requested
    if not cuda_driver():  # neither FAISS nor torch sees a GPU without it: decided without importing either
        return "faiss-cpu"
    if faiss_gpus() > 0:
        return "faiss-gpu"
    if _torch_cuda():
        return "torch"
    return "faiss-cpu"


def cuda_driver() -> bool:
    """Whether the NVIDIA driver library, which every CUDA runtime loads, can be loaded here (on
    Linux; elsewhere assumed present, so torch and FAISS decide as before)."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def faiss_gpus() -> int:
    try:
        import faiss
    except ImportError:
        return 0
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def _faiss_gpu_refusal() -> str | None:
    """Why the FAISS GPU backend cannot run here, or None when it can: asked for by name, it is
    refused up front rather than failing inside the first search."""
    try:
        import faiss
    except ImportError as error:  # not installed, or a GPU build whose CUDA libraries do not load
        found = "FAISS is not installed" if error.name == "faiss" else f"FAISS does not import ({error})"
    else:
        if not hasattr(faiss, "StandardGpuResources"):
            found = "the installed FAISS is a CPU-only build"
        elif faiss_gpus() == 0:
            found = "FAISS has GPU support but sees no GPU"
        else:
            return None
    return (
        f"search backend 'faiss-gpu' cannot run here: {found}. On a machine with an NVIDIA GPU, install "
        'FAISS\'s GPU build with: pip install -e ".[gpu]". Or choose another backend: torch (on CUDA when '
        "torch sees a GPU, else on the CPU), faiss-cpu, or auto (the fastest one present)."
    )


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# A raw searcher fetches `width` candidates per query (any order among equal scores).
RawSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class Index:
    """A database prepared once for exact search: the backend's index is built on the first
    search that needs it and serves every later search, restricted or not."""

    def __init__(self, database: np.ndarray, labels: np.ndarray | None = None, backend: str = "auto"):
        self.database = np.ascontiguousarray(database, dtype=np.float32)
        if self.database.ndim != 2:
            raise ValueError(f"the database must be 2-D, got shape {self.database.shape}")
        self.labels = None if labels is None else np.asarray(labels)
        self.backend = resolve_backend(backend)
        self._searcher: Callable[[np.ndarray | None], RawSearch] | None = None

    def _whole(self) -> Callable[[np.ndarray | None], RawSearch]:
        if self._searcher is None:
            self._searcher = _SEARCHERS[self.backend](self.database)
        return self._searcher

    def search(self, queries: np.ndarray, k: int, *, restrict: Restrict = "none", query_labels: np.ndarray | None = None) -> Neighbours:
        """Exact top-k by inner product with deterministic tie-breaking (lower database row wins).
        "same" / "other" keep, per query, only rows whose label equals / differs from its label."""
        database = self.database
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != database.shape[1]:
            raise ValueError(f"queries {queries.shape} and database {database.shape} must be 2-D with the same width")
        if restrict != "none" and (query_labels is None or self.labels is None):
            raise ValueError(f"restrict={restrict!r} needs query labels and database labels")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        if len(queries) == 0 or len(database) == 0 or k == 0:
            return Neighbours(scores, rows)
        database_labels = self.labels
        if restrict != "none":
            query_labels = np.asarray(query_labels)
        build = _SEARCHERS[self.backend]
        # "same": a small gathered copy per label beats a selector over every row (not on FAISS GPU,
        # where each copy would be a new GPU index); the whole database is then never indexed.
        gather = restrict == "same" and self.backend != "faiss-gpu"
        if restrict == "other":
            excluded = _largest_excluded(query_labels, database_labels)
            if excluded + k + TIE_MARGIN <= OVERFETCH_MAX:
                fetch = _filtered_fetch(self._whole()(None), queries, query_labels, database_labels, excluded)
                return Neighbours(*_exact_top_k(fetch, len(queries), k, len(database) - excluded))
        if restrict == "none":
            groups = [(np.arange(len(queries)), None)]
        else:
            groups = [(np.flatnonzero(query_labels == label), label) for label in np.unique(query_labels)]
        for members, label in groups:
            allowed = _allowed_rows(database_labels, label, restrict)
            if allowed is not None and len(allowed) == 0:
                continue  # nothing to find: the padding stays
            if gather:
                fetch = _gathered_fetch(build(database[allowed])(None), queries[members], allowed)
            else:
                fetch = _fetch_rows(self._whole()(allowed), queries[members])
            group_scores, group_rows = _exact_top_k(fetch, len(members), k, len(database) if allowed is None else len(allowed))
            scores[members], rows[members] = group_scores, group_rows
        return Neighbours(scores, rows)


def build(database: np.ndarray, labels: np.ndarray | None = None, backend: str = "auto") -> Index:
    """Index a database once, for many searches."""
    return Index(database, labels, backend)


def search(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    *,
    restrict: Restrict = "none",
    query_labels: np.ndarray | None = None,
    database_labels: np.ndarray | None = None,
    backend: str = "auto",
) -> Neighbours:
    """One search over a database used once (see `Index.search`)."""
    return Index(database, database_labels, backend).search(queries, k, restrict=restrict, query_labels=query_labels)


def plain_top_k(queries: np.ndarray, database: np.ndarray, k: int, backend: str = "auto") -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """One unrestricted top-k search as a backend runs it, with no tie handling: the floor that
    benchmarks measure bench's searches against. Returns a function that runs the search; the
    database is indexed once, before the first call."""
    searcher = _SEARCHERS[resolve_backend(backend)](np.ascontiguousarray(database, dtype=np.float32))(None)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    return lambda: searcher(queries, k)


def _allowed_rows(database_labels: np.ndarray | None, label: object, restrict: Restrict) -> np.ndarray | None:
    if restrict == "none":
        return None
    assert database_labels is not None
    return np.flatnonzero(database_labels == label if restrict == "same" else database_labels != label)


def _largest_excluded(query_labels: np.ndarray, database_labels: np.ndarray) -> int:
    """Most database rows any query loses to an "other" restriction."""
    values, counts = np.unique(database_labels, return_counts=True)
    present = np.isin(values, query_labels)
    return int(counts[present].max()) if present.any() else 0


# A fetch returns `width` candidates for the queries at `positions`, allowed rows only.
Fetch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _fetch_rows(raw: RawSearch, queries: np.ndarray) -> Fetch:
    return lambda positions, width: raw(queries[positions], width)


def _gathered_fetch(raw: RawSearch, queries: np.ndarray, allowed: np.ndarray) -> Fetch:
    """Search over database[allowed]; rows map back in order, so row ties still break the same way."""

    def fetch(positions: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = raw(queries[positions], width)
        return scores, np.where(rows >= 0, allowed[np.maximum(rows, 0)], -1)

    return fetch


def _filtered_fetch(
    raw: RawSearch, queries: np.ndarray, query_labels: np.ndarray, database_labels: np.ndarray, excluded: int
) -> Fetch:
    """Unrestricted candidates, `excluded` more than asked, with same-label rows dropped.

    At most `excluded` of them share a query's label, so `width` allowed ones remain, and every
    row not fetched scores no higher than the last one kept: tie widening stays exact."""
    total = len(database_labels)

    def fetch(positions: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = raw(queries[positions], min(width + excluded, total))
        same = (rows >= 0) & (database_labels[np.maximum(rows, 0)] == query_labels[positions, None])
        rows = np.where(same, -1, rows)
        if width + excluded >= total:  # the whole database: queries with more allowed rows keep them all
            return scores, rows
        order = np.argsort(rows < 0, axis=1, kind="stable")[:, :width]  # kept rows first, order kept
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)

    return fetch


def rank_order(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per query, the positions of its candidates in bench's neighbour order: score descending,
    then the lower database row; padding (row -1) last."""
    return np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -scores), axis=-1)


def _exact_top_k(fetch: Fetch, count: int, k: int, allowed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fetch k + margin, order by (-score, row), widen for queries whose boundary tie is cut."""
    out_scores = np.full((count, k), -np.inf, dtype=np.float32)
    out_rows = np.full((count, k), -1, dtype=np.int64)
    pending = np.arange(count)
    width = min(k + TIE_MARGIN, max(allowed, 1))
    while len(pending):
        scores, rows = fetch(pending, width)
        scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
        order = rank_order(scores, rows)
        scores = np.take_along_axis(scores, order, axis=1)
        rows = np.take_along_axis(rows, order, axis=1)
        take = min(k, scores.shape[1])  # a fetch may return more than `width` (all rows, padded)
        kth = scores[:, take - 1]
        weakest = scores[:, -1]
        done = (width >= allowed) | (weakest < kth) | np.isneginf(kth)
        out_scores[pending[done], :take] = scores[done, :take]
        out_rows[pending[done], :take] = np.where(np.isneginf(scores[done, :take]), -1, rows[done, :take])
        pending = pending[~done]
        width = min(width * 2, allowed)
    return out_scores, out_rows


def torch_device(requested: str | None = None) -> "torch.device":
    """Where torch searches run: the device named, else CUDA when torch sees one, else the CPU."""
    import torch

    if requested not in (None, "auto"):
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _torch_searcher(database: np.ndarray) -> Callable[[np.ndarray | None], RawSearch]:
    import torch

    device = torch_device()
    base = torch.from_numpy(database).to(device)

    def for_rows(allowed: np.ndarray | None) -> RawSearch:
        mask = None
        if allowed is not None:
            mask = torch.full((len(database),), float("-inf"), device=device)
            mask[torch.from_numpy(allowed).to(device)] = 0.0

        def raw(queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
            block = max(1, SCORE_BLOCK_BYTES // (4 * len(database)))
            all_scores, all_rows = [], []
            for start in range(0, len(queries), block):
                chunk = torch.from_numpy(queries[start : start + block]).to(device)
                scores = chunk @ base.T
                if mask is not None:
                    scores += mask
                top = torch.topk(scores, width, dim=1)
                all_scores.append(top.values.cpu().numpy())
                all_rows.append(top.indices.cpu().numpy().astype(np.int64))
            return np.concatenate(all_scores), np.concatenate(all_rows)

        return raw

    return for_rows


def _faiss_cpu_searcher(database: np.ndarray) -> Callable[[np.ndarray | None], RawSearch]:
    import faiss

    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database)

    def for_rows(allowed: np.ndarray | None) -> RawSearch:
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))

        def raw(queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
            scores, rows = index.search(queries, width, params=params)
            return scores, rows.astype(np.int64)

        return raw

    return for_rows


def _faiss_gpu_searcher(database: np.ndarray) -> Callable[[np.ndarray | None], RawSearch]:
    """FAISS GPU has no selectors: restricted searches over-fetch and filter when the excluded
    rows fit under FAISS's k limit, and otherwise run on torch CUDA."""
    import faiss

    index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(database.shape[1]))
    index.add(database)
    torch_copy: list[Callable[[np.ndarray | None], RawSearch]] = []

    def fallback(allowed: np.ndarray | None) -> RawSearch:
        """torch CUDA over the same rows, uploaded once and only if a search needs it."""
        if not torch_copy:
            torch_copy.append(_torch_searcher(database))
        return torch_copy[0](allowed)

    def for_rows(allowed: np.ndarray | None) -> RawSearch:
        excluded = 0 if allowed is None else len(database) - len(allowed)
        if excluded + 2 * TIE_MARGIN > FAISS_GPU_MAX_K // 2:
            return fallback(allowed)
        keep = None if allowed is None else np.zeros(len(database), dtype=bool)
        if keep is not None:
            keep[allowed] = True

        def wide(queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
            return fallback(allowed)(queries, width)

        def raw(queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
            fetch = min(width + excluded, len(database))
            if fetch > FAISS_GPU_MAX_K:  # a wide tie or a large k: beyond what FAISS GPU returns
                return wide(queries, width)
            scores, rows = index.search(queries, fetch)
            rows = rows.astype(np.int64)
            if keep is not None:
                rows = np.where(keep[np.maximum(rows, 0)] & (rows >= 0), rows, -1)
                order = np.argsort(rows < 0, axis=1, kind="stable")  # allowed rows first, order kept
                scores = np.take_along_axis(scores, order, axis=1)[:, :width]
                rows = np.take_along_axis(rows, order, axis=1)[:, :width]
            return scores, rows

        return raw

    return for_rows


_SEARCHERS: dict[str, Callable[[np.ndarray], Callable[[np.ndarray | None], RawSearch]]] = {
    "torch": _torch_searcher,
    "faiss-cpu": _faiss_cpu_searcher,
    "faiss-gpu": _faiss_gpu_searcher,
}
