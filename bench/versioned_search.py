"""Exact restricted top-k over row-aligned versions of one database (the same images under K
processings), as the kNN experiments need it, from one score computation per version.

For a block of queries and each version v, the scores S_v = Q · D_vᵀ are computed once and serve
every restriction: the query's own class ("same": the columns of that class's rows), every other
class ("other": every column but those) and each mixed database whose row i is taken from version
mix[i] (the "uniform" setup). No query × database matrix larger than one block is ever held, and
a version's database is never searched twice for the same block.

The "other" and mixed lists come from one shared shortlist per query. Every score a query can see
in any of them lies between the lowest and the highest of its K versions' scores for that row, so
the k-th best lowest score among the other classes' rows, t, is a floor that the k-th best score of
every "other" list and every mixed database reaches, and only rows whose highest score is at least
t can be among any of their neighbours (ties at the k-th place included). Those few rows are
ranked per list, so the full score rows are read by a few passes (lowest, highest, the
comparison with t) whatever the number of versions and mixes, and then left alone.

Ties are broken as everywhere in bench: by score, then by the lower original database row; a
query whose k-th score ties with candidates that were not fetched is ranked over its whole row.
Runs on torch (CPU, or CUDA when present), with no FAISS or LanceDB needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from bench import exact_search
from bench.exact_search import TIE_MARGIN, Neighbours
from bench.vectors import normalise, normalise_in_place

if TYPE_CHECKING:
    import torch

BLOCK_BYTES_CPU = 512 << 20  # working memory per query block on a CPU
BLOCK_FRACTION_GPU = 0.25  # share of the free GPU memory a block may take


@dataclass(frozen=True)
class VersionedNeighbours:
    same: list[Neighbours]  # per version: top-k among the rows of the query's label
    other: list[Neighbours]  # per version: top-k among the rows of every other label
    mixed: list[Neighbours]  # per mix: top-k over the database mixed from the versions


def block_rows(database_rows: int, versions: int, device: "torch.device", block_bytes: int | None = None) -> int:
    """Queries per block: K score rows of N floats each, one working row for the lowest and
    highest scores, one for the shortlists' lists, and N flags."""
    import torch

    per_query = max(database_rows, 1) * (4 * (versions + 2) + 1)
    if block_bytes is not None:
        budget = block_bytes
    elif device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = int(free * BLOCK_FRACTION_GPU)
    else:
        budget = BLOCK_BYTES_CPU
    return max(1, min(4096, budget // per_query))


class VersionedSearch:
    """K row-aligned versions of a labelled database, normalised and held on the device once,
    for any number of query matrices. `in_place`: normalise the given matrices themselves, so
    that a CPU index holds no second copy; for a caller that reads them no more (not even as
    queries: normalising a unit vector again can change its last bit)."""

    def __init__(self, versions: Sequence[np.ndarray], labels: np.ndarray, device: str | None = None,
                 block_bytes: int | None = None, in_place: bool = False):
        import torch

        self.device = exact_search.torch_device(device)
        labels = np.asarray(labels)
        self.count = len(labels)
        prepare = normalise_in_place if in_place else normalise
        held: dict[int, "torch.Tensor"] = {}  # a matrix given twice is normalised (and held) once
        for version in versions:
            if id(version) not in held:
                held[id(version)] = torch.from_numpy(prepare(version)).to(self.device)
        self.tensors = [held[id(version)] for version in versions]
        if len({tuple(t.shape) for t in self.tensors}) > 1:
            raise ValueError("every version must have the same shape (the same images, row for row)")
        self.label_values, codes = np.unique(labels, return_inverse=True)
        codes = codes.reshape(-1)
        sizes = np.bincount(codes, minlength=len(self.label_values))
        # Row c of the table lists the rows of label c in ascending order, then padding (masked by
        # `sizes`); the last row stands for a label no database row has.
        order = np.argsort(codes, kind="stable")
        slots = np.arange(self.count) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        table = np.zeros((len(sizes) + 1, max(int(sizes.max(initial=0)), 1)), dtype=np.int64)
        table[codes[order], slots] = order
        self.codes = torch.from_numpy(codes.astype(np.int64)).to(self.device)
        self.label_sizes = np.r_[sizes, 0].astype(np.int64)
        self.sizes = torch.from_numpy(self.label_sizes).to(self.device)
        self.table = torch.from_numpy(table).to(self.device)
        self.block_bytes = block_bytes

    def _codes_of(self, query_labels: np.ndarray) -> np.ndarray:
        """Each query label's row in the members table; a label no database row has gets the last."""
        values = self.label_values
        found = np.minimum(np.searchsorted(values, query_labels), len(values) - 1)
        return np.where(values[found] == query_labels, found, len(values)).astype(np.int64)

    def search(self, queries: np.ndarray, query_labels: np.ndarray, k: int, mixes: Sequence[np.ndarray] = ()) -> VersionedNeighbours:
        """Per version the "same" and "other" top-k of every query; per mix (a version index for
        every original database row) the top-k over the mixed database."""
        import torch

        versions = len(self.tensors)
        query_labels = np.asarray(query_labels)
        count = len(queries)
        if count == 0 or self.count == 0 or k == 0:
            return VersionedNeighbours([_empty(count, k) for _ in range(versions)], [_empty(count, k) for _ in range(versions)],
                                       [_empty(count, k) for _ in mixes])
        unit = torch.from_numpy(normalise(queries)).to(self.device)
        codes = self._codes_of(query_labels)
        query_order = np.argsort(query_labels, kind="stable")  # runs of one label inside each block
        mix_index = None
        if len(mixes):
            mix_index = torch.from_numpy(np.stack([np.asarray(mix, dtype=np.int64) for mix in mixes])).to(self.device)
        lists = versions + len(mixes)
        block = min(block_rows(self.count, len(self.tensors), self.device, self.block_bytes), count)
        scores = torch.empty((versions, block, self.count), dtype=torch.float32, device=self.device)
        plane = torch.empty((block, self.count), dtype=torch.float32, device=self.device)
        flags = torch.empty((block, self.count), dtype=torch.bool, device=self.device)
        same = _Found(versions, count, k, self.device)
        rest = _Found(lists, count, k, self.device)  # "other" per version, then the mixes
        for start in range(0, count, block):
            positions = query_order[start:start + block]
            size = len(positions)
            at = torch.from_numpy(positions).to(self.device)
            chunk = unit[at]
            for v, database in enumerate(self.tensors):
                torch.mm(chunk, database.T, out=scores[v, :size])
            block_codes = torch.from_numpy(codes[positions]).to(self.device)
            same.put(at, *self._same(scores[:, :size], block_codes, k))
            rest.put(at, *self._rest(scores, size, codes[positions], block_codes, k, mix_index, plane[:size], flags[:size]))
        same_lists, rest_lists = same.lists(), rest.lists()
        return VersionedNeighbours(same_lists, rest_lists[:versions], rest_lists[versions:])

    def _same(self, block_scores: "torch.Tensor", block_codes: "torch.Tensor", k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Top-k of every version among the rows of each query's label: (K, B, k) scores and rows."""
        import torch

        members = self.table[block_codes]  # (B, W) rows of the query's label, ascending, then padding
        picked = block_scores.gather(2, members.expand(block_scores.shape[0], -1, -1))
        padding = torch.arange(members.shape[1], device=self.device)[None] >= self.sizes[block_codes][:, None]
        picked.masked_fill_(padding, -np.inf)
        values, slots = _ranked(picked, k)
        return values, _rows_at(members, slots)

    def _rest(self, scores: "torch.Tensor", size: int, codes: np.ndarray, block_codes: "torch.Tensor", k: int,
              mix_index: "torch.Tensor | None", plane: "torch.Tensor", flags: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Top-k of every version among the other labels' rows, then of every mixed database:
        (K + mixes, B, k) scores and rows of the block's `size` queries (the first rows of the
        `scores` buffer), ranked over the shortlist of each query."""
        import torch

        block_scores = scores[:, :size]
        floor = torch.amin(block_scores, dim=0, out=plane)
        for first, last, code in _runs(codes):
            if code < len(self.label_values):  # a label no row has leaves every row to "other"
                floor[first:last].index_fill_(1, self.table[code, :self.label_sizes[code]], -np.inf)
        fetch = min(k, self.count)
        threshold = torch.topk(floor, fetch, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
        ceiling = torch.amax(block_scores, dim=0, out=plane)
        torch.ge(ceiling, threshold, out=flags)
        hits = flags.nonzero()  # (query, row) pairs, by query, rows ascending within each query
        per_query = torch.bincount(hits[:, 0], minlength=size).cpu().numpy()
        flat = scores.view(len(scores), -1)  # row q, column c of the block at q * N + c
        lists = len(scores) + (0 if mix_index is None else len(mix_index))
        values = torch.full((lists, size, k), -np.inf, dtype=torch.float32, device=self.device)
        rows = torch.full((lists, size, k), -1, dtype=torch.int64, device=self.device)
        for first, last, begin, end in _groups(per_query, max(1, plane.numel() // lists)):
            found = self._shortlisted(flat, block_codes, hits[begin:end], first, last - first, k, mix_index)
            values[:, first:last], rows[:, first:last] = found
        return values, rows

    def _shortlisted(self, flat: "torch.Tensor", block_codes: "torch.Tensor", hits: "torch.Tensor",
                     first: int, size: int, k: int, mix_index: "torch.Tensor | None") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Rank the shortlisted rows (`hits`) of queries first..first+size for every "other" list
        and every mix; `flat`: the block's scores, (K, queries × N)."""
        import torch

        query, column = hits[:, 0], hits[:, 1]
        local = query - first
        per_query = torch.bincount(local, minlength=size)
        slot = torch.arange(len(hits), device=self.device) - (torch.cumsum(per_query, 0) - per_query)[local]
        width = int(per_query.max()) if len(hits) else 0
        scored = flat.index_select(1, query * self.count + column)  # (K, shortlisted)
        parts = [scored.masked_fill(self.codes[column] == block_codes[query], -np.inf)]  # "other": not the query's label
        if mix_index is not None:
            parts.append(scored.gather(0, mix_index[:, column]))  # each row under its mix's version
        listed = torch.cat(parts)  # (lists, shortlisted)
        laid = torch.full((len(listed), size, width), -np.inf, dtype=torch.float32, device=self.device)
        laid[:, local, slot] = listed
        shortlist = torch.zeros((size, width), dtype=torch.int64, device=self.device)
        shortlist[local, slot] = column
        values, slots = _ranked(laid, k)
        return values, _rows_at(shortlist, slots)


class _Found:
    """(lists, queries, k) scores and rows filled block by block, handed out as `Neighbours`."""

    def __init__(self, lists: int, count: int, k: int, device: "torch.device"):
        import torch

        self.scores = torch.full((lists, count, k), -np.inf, dtype=torch.float32, device=device)
        self.rows = torch.full((lists, count, k), -1, dtype=torch.int64, device=device)

    def put(self, at: "torch.Tensor", scores: "torch.Tensor", rows: "torch.Tensor") -> None:
        self.scores[:, at] = scores
        self.rows[:, at] = rows

    def lists(self) -> list[Neighbours]:
        scores, rows = self.scores.cpu().numpy(), self.rows.cpu().numpy()
        return [Neighbours(scores[i], rows[i]) for i in range(len(scores))]


class SearchedVersions:
    """The same answers as `VersionedSearch`, from plain restricted searches on a chosen
    `bench.exact_search` backend (FAISS CPU or GPU): one index per version, one search per restriction."""

    def __init__(self, versions: Sequence[np.ndarray], labels: np.ndarray, backend: str, in_place: bool = False):
        self.labels = np.asarray(labels)
        self.units = [(normalise_in_place if in_place else normalise)(version) for version in versions]
        self.indexes = [exact_search.build(unit, labels=self.labels, backend=backend) for unit in self.units]
        self.backend = backend

    def search(self, queries: np.ndarray, query_labels: np.ndarray, k: int, mixes: Sequence[np.ndarray] = ()) -> VersionedNeighbours:
        unit = normalise(queries)
        same = [found.search(unit, k, restrict="same", query_labels=query_labels) for found in self.indexes]
        other = [found.search(unit, k, restrict="other", query_labels=query_labels) for found in self.indexes]
        rows = np.arange(len(self.labels))
        stacked = np.stack(self.units)
        mixed = [exact_search.search(unit, stacked[np.asarray(mix), rows], k, backend=self.backend) for mix in mixes]
        return VersionedNeighbours(same, other, mixed)


SEARCHES = ("versioned", "restricted")


def build(versions: Sequence[np.ndarray], labels: np.ndarray, search: str = "versioned", backend: str = "auto",
          in_place: bool = False) -> "VersionedSearch | SearchedVersions":
    """versioned: one score computation per version and query block (torch, on CUDA when
    present); restricted: plain restricted searches on the exact-search `backend`. `in_place`: the
    versions are normalised where they lie (the caller needs their raw values no more)."""
    if search == "versioned":
        return VersionedSearch(versions, labels, in_place=in_place)
    return SearchedVersions(versions, labels, exact_search.resolve_backend(backend), in_place=in_place)


def describe(search: str, backend: str) -> str:
    """What a `build(..., search, backend)` searches with, for provenance."""
    if search == "versioned":
        return f"versioned: torch score blocks ({exact_search.torch_device().type})"
    return f"restricted searches on {exact_search.resolve_backend(backend)}"


def _runs(labels: np.ndarray) -> list[tuple[int, int, object]]:
    """(first, last, label) of each run of equal labels."""
    if len(labels) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels)]
    return [(int(s), int(e), labels[s].item()) for s, e in zip(starts, ends)]


def _groups(per_query: np.ndarray, budget: int) -> Iterator[tuple[int, int, int, int]]:
    """(first, last, begin, end): consecutive queries first..last, whose shortlists (hits
    begin..end) laid out as a (queries × longest shortlist) matrix stay within `budget` entries;
    normally the whole block is one group."""
    ends = np.cumsum(per_query)
    first = 0
    while first < len(per_query):
        longest = np.maximum.accumulate(per_query[first:])
        fits = np.arange(1, len(longest) + 1) * longest <= budget
        last = first + (len(fits) if fits.all() else max(1, int(np.argmin(fits))))
        yield first, last, int(ends[first - 1]) if first else 0, int(ends[last - 1])
        first = last


def _rows_at(table: "torch.Tensor", slots: "torch.Tensor") -> "torch.Tensor":
    """The database rows at `slots` (lists × B × k) of each query's row of `table` (B × W); -1 stays -1."""
    import torch

    if table.shape[-1] == 0:
        return torch.full_like(slots, -1)
    rows = table.expand(slots.shape[0], -1, -1).gather(2, slots.clamp(min=0))
    return torch.where(slots >= 0, rows, -1)


def _ranked(values: "torch.Tensor", k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Exact top-k along the last axis by (score desc, position asc): (..., k) scores and
    positions; -inf scores are not candidates: padded with (-inf, -1)."""
    import torch

    width = values.shape[-1]
    out_values = torch.full((*values.shape[:-1], k), -np.inf, dtype=values.dtype, device=values.device)
    out_slots = torch.full((*values.shape[:-1], k), -1, dtype=torch.int64, device=values.device)
    if width == 0 or values.numel() == 0:
        return out_values, out_slots
    fetch = min(k + TIE_MARGIN, width)
    top, slots = torch.topk(values, fetch, dim=-1)
    slots, by_slot = slots.sort(dim=-1)  # equal scores keep the lower position first ...
    top, by_score = top.gather(-1, by_slot).sort(dim=-1, descending=True, stable=True)  # ... through a stable sort
    slots = slots.gather(-1, by_score).contiguous()
    top = top.contiguous()
    take = min(k, fetch)
    kth = top[..., take - 1]
    if fetch < width:  # the k-th score's tie may go on past what was fetched: rank those rows whole
        unsure = ((top[..., -1] == kth) & (kth > -np.inf)).reshape(-1).nonzero()[:, 0]
        if len(unsure):
            whole, order = values.reshape(-1, width)[unsure].sort(dim=-1, descending=True, stable=True)
            top.view(-1, fetch)[unsure, :take] = whole[:, :take]
            slots.view(-1, fetch)[unsure, :take] = order[:, :take]
    out_values[..., :take] = top[..., :take]
    out_slots[..., :take] = torch.where(top[..., :take] > -np.inf, slots[..., :take], -1)
    return out_values, out_slots


def _empty(count: int, k: int) -> Neighbours:
    return Neighbours(np.full((count, k), -np.inf, dtype=np.float32), np.full((count, k), -1, dtype=np.int64))
