"""Exact restricted top-k over row-aligned versions of one database (the same images under K
processings), as the kNN experiments need it, from one score computation per version.

For a block of queries and each version v, the scores S_v = Q · D_vᵀ are computed once and serve
every restriction: the query's own class ("same": the columns of that class's rows), every other
class ("other": S_v with those columns masked), and each mixed database whose row i is taken from
version mix[i] (the "uniform" setup: a gather across the versions' scores). Queries are taken in
label order, so each block holds a few runs of one label. No query × database matrix larger than
one block is ever held, and a version's database is never searched twice for the same block.

Ties are broken as everywhere in bench: by score, then by the lower original database row; a
query whose k-th score ties with candidates that were not fetched is resolved over its whole row.
Runs on torch (CPU, or CUDA when present), with no FAISS or LanceDB needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from bench import index
from bench.index import TIE_MARGIN, Neighbours
from bench.vectors import normalise

if TYPE_CHECKING:
    import torch

BLOCK_BYTES_CPU = 512 << 20  # score memory per query block on a CPU
BLOCK_FRACTION_GPU = 0.25  # share of the free GPU memory a block of scores may take


@dataclass(frozen=True)
class VersionedNeighbours:
    same: list[Neighbours]  # per version: top-k among the rows of the query's label
    other: list[Neighbours]  # per version: top-k among the rows of every other label
    mixed: list[Neighbours]  # per mix: top-k over the database mixed from the versions


def _device(requested: str | None) -> "torch.device":
    import torch

    if requested not in (None, "auto"):
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class VersionedIndex:
    """K row-aligned versions of a labelled database, normalised and held on the device once,
    for any number of query matrices."""

    def __init__(self, versions: Sequence[np.ndarray], labels: np.ndarray, device: str | None = None, block_bytes: int | None = None):
        import torch

        self.device = _device(device)
        labels = np.asarray(labels)
        self.count = len(labels)
        self.rows = np.arange(self.count)
        self.members = {label.item(): torch.from_numpy(np.flatnonzero(labels == label)).to(self.device) for label in np.unique(labels)}
        self.tensors = [torch.from_numpy(normalise(version)).to(self.device) for version in versions]
        if len({tuple(t.shape) for t in self.tensors}) > 1:
            raise ValueError("every version must have the same shape (the same images, row for row)")
        self.block_bytes = block_bytes

    def _block_rows(self, extra: int) -> int:
        """Queries per block: K score rows of N floats each, plus `extra` working rows."""
        import torch

        per_query = 4 * max(self.count, 1) * (len(self.tensors) + extra)
        if self.block_bytes is not None:
            budget = self.block_bytes
        elif self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            budget = int(free * BLOCK_FRACTION_GPU)
        else:
            budget = BLOCK_BYTES_CPU
        return max(1, min(4096, budget // per_query))

    def search(self, queries: np.ndarray, query_labels: np.ndarray, k: int, mixes: Sequence[np.ndarray] = ()) -> VersionedNeighbours:
        """Per version the "same" and "other" top-k of every query; per mix (a version index for
        every original database row) the top-k over the mixed database."""
        import torch

        versions = len(self.tensors)
        query_labels = np.asarray(query_labels)
        count = len(queries)
        same = [_empty(count, k) for _ in range(versions)]
        other = [_empty(count, k) for _ in range(versions)]
        mixed = [_empty(count, k) for _ in mixes]
        if count == 0 or self.count == 0 or k == 0:
            return VersionedNeighbours(*(list(map(_as_neighbours, part)) for part in (same, other, mixed)))
        unit = torch.from_numpy(normalise(queries)).to(self.device)
        query_order = np.argsort(query_labels, kind="stable")  # runs of one label inside each block
        mix_index = [torch.from_numpy(np.asarray(mix, dtype=np.int64)).to(self.device) for mix in mixes]
        block = self._block_rows(extra=1 if mixes else 0)
        scores = torch.empty((versions, min(block, count), self.count), dtype=torch.float32, device=self.device)
        for start in range(0, count, block):
            positions = query_order[start:start + block]
            size = len(positions)
            chunk = unit[torch.from_numpy(positions).to(self.device)]
            for v, database in enumerate(self.tensors):
                torch.mm(chunk, database.T, out=scores[v, :size])
            for m, chosen in enumerate(mix_index):  # before "other" masks the scores in place
                picked = torch.gather(scores[:, :size], 0, chosen.view(1, 1, -1).expand(1, size, -1))[0]
                _store(mixed[m], positions, *_top_k(picked, k, self.rows))
            runs = [(first, last, self.members.get(label)) for first, last, label in _runs(query_labels[positions])]
            for v in range(versions):
                for first, last, members in runs:
                    if members is None:
                        continue  # no database row has this label: "same" stays empty, "other" is every row
                    found = _top_k(scores[v, first:last].index_select(1, members), k, members.cpu().numpy())
                    _store(same[v], positions[first:last], *found)
                    scores[v, first:last].index_fill_(1, members, -torch.inf)
                _store(other[v], positions, *_top_k(scores[v, :size], k, self.rows))
        return VersionedNeighbours(*(list(map(_as_neighbours, part)) for part in (same, other, mixed)))


class SearchedVersions:
    """The same answers as `VersionedIndex`, from plain restricted searches on a chosen
    `bench.index` backend (FAISS CPU or GPU): one index per version, one search per restriction."""

    def __init__(self, versions: Sequence[np.ndarray], labels: np.ndarray, backend: str):
        self.labels = np.asarray(labels)
        self.units = [normalise(version) for version in versions]
        self.indexes = [index.build(unit, labels=self.labels, backend=backend) for unit in self.units]
        self.backend = backend

    def search(self, queries: np.ndarray, query_labels: np.ndarray, k: int, mixes: Sequence[np.ndarray] = ()) -> VersionedNeighbours:
        unit = normalise(queries)
        same = [found.search(unit, k, restrict="same", query_labels=query_labels) for found in self.indexes]
        other = [found.search(unit, k, restrict="other", query_labels=query_labels) for found in self.indexes]
        rows = np.arange(len(self.labels))
        stacked = np.stack(self.units)
        mixed = [index.search(unit, stacked[np.asarray(mix), rows], k, backend=self.backend) for mix in mixes]
        return VersionedNeighbours(same, other, mixed)


def build(versions: Sequence[np.ndarray], labels: np.ndarray, backend: str = "auto") -> "VersionedIndex | SearchedVersions":
    """auto / torch: one score computation per version and query block (torch, on CUDA when
    present); faiss-cpu / faiss-gpu: plain restricted searches on that backend."""
    if backend in ("auto", "torch"):
        return VersionedIndex(versions, labels)
    return SearchedVersions(versions, labels, index.resolve_backend(backend))


def describe(backend: str) -> str:
    """The backend a `build(..., backend)` uses, for provenance."""
    if backend in ("auto", "torch"):
        return f"torch score blocks ({_device(None).type})"
    return index.resolve_backend(backend)


def _runs(labels: np.ndarray) -> list[tuple[int, int, object]]:
    """(first, last, label) of each run of equal labels."""
    if len(labels) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels)]
    return [(int(s), int(e), labels[s].item()) for s, e in zip(starts, ends)]


def _empty(count: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((count, k), -np.inf, dtype=np.float32), np.full((count, k), -1, dtype=np.int64)


def _store(target: tuple[np.ndarray, np.ndarray], positions: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> None:
    target[0][positions] = scores
    target[1][positions] = rows


def _as_neighbours(pair: tuple[np.ndarray, np.ndarray]) -> Neighbours:
    return Neighbours(*pair)


def _top_k(scores: "torch.Tensor", k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row of `scores` (columns are database rows `rows`), ordered by
    (score desc, row asc); -inf scores are not candidates; padded with (-inf, -1)."""
    import torch

    count, width = scores.shape
    out_scores, out_rows = _empty(count, k)
    if count == 0 or width == 0:
        return out_scores, out_rows
    fetch = min(k + TIE_MARGIN, width)
    values, columns = torch.topk(scores, fetch, dim=1)
    values = values.cpu().numpy()
    found = rows[columns.cpu().numpy()]
    found = np.where(np.isneginf(values), -1, found)
    order = np.lexsort((np.where(found < 0, np.iinfo(np.int64).max, found), -values), axis=-1)
    values = np.take_along_axis(values, order, axis=1)
    found = np.take_along_axis(found, order, axis=1)
    take = min(k, fetch)
    kth = values[:, take - 1]
    unsure = (fetch < width) & (values[:, -1] == kth) & ~np.isneginf(kth)  # the k-th score's tie may go on
    for query in np.flatnonzero(unsure):
        line = scores[query].cpu().numpy()
        candidates = np.flatnonzero(line >= kth[query])
        keys = np.lexsort((rows[candidates], -line[candidates]))[:take]
        values[query, :take] = line[candidates[keys]]
        found[query, :take] = rows[candidates[keys]]
    out_scores[:, :take] = values[:, :take]
    out_rows[:, :take] = found[:, :take]
    return out_scores, out_rows
