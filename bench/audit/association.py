"""How strongly a file property goes with the class label: bias-corrected Cramér's V with a
bootstrap interval and a permutation p-value, standardized residuals, and the false-discovery
rule that marks a board's properties. Plain numpy on codes; nothing here reads files.

The unit is the file: a property is a fact of the file, so records cut from one file (crops)
are resampled and permuted together. Under the null the property's values are exchangeable
across files, whatever labels the files' records carry, so permuting the values over files
gives an exact test of "no association". The classes are fixed by the dataset; the bootstrap
draws which files each class holds (files resampled within their class)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PASS_ELEMENTS = 4_000_000  # records × resamples handled in one numpy pass: memory stays bounded on big datasets


@dataclass(frozen=True)
class Coded:
    """One property against the labels, as integer codes: per record its label and file, per
    file its value."""

    labels: np.ndarray  # (records,) label codes 0 … classes-1
    units: np.ndarray  # (records,) file codes 0 … files-1
    values: np.ndarray  # (files,) value codes 0 … levels-1
    classes: int
    levels: int
    record_weights: np.ndarray | None = None  # (records,) what each record counts for (None: 1); see per_file

    def table(self, values: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
        """The classes × values contingency table (optionally with other file values or file weights)."""
        per_record = (self.values if values is None else values)[self.units]
        cells = self.labels * self.levels + per_record
        counted = None if weights is None else weights[self.units]
        if self.record_weights is not None:
            counted = self.record_weights if counted is None else counted * self.record_weights
        counts = np.bincount(cells, weights=counted, minlength=self.classes * self.levels)
        return counts.reshape(self.classes, self.levels)

    def chunk(self) -> int:
        """How many resamples one numpy pass handles."""
        return max(1, PASS_ELEMENTS // max(len(self.labels), len(self.values), 1))

    def tables(self, values: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
        """A stack of tables, one per row of `values` (files' values) or of `weights` (files' counts)."""
        rows = len(values if values is not None else weights)
        size = self.classes * self.levels
        offsets = np.arange(rows)[:, None] * size
        if values is not None:
            cells = self.labels * self.levels + values[:, self.units]
            counted = None if self.record_weights is None else np.broadcast_to(self.record_weights, cells.shape).ravel()
            counts = np.bincount((cells + offsets).ravel(), weights=counted, minlength=rows * size)
        else:
            cells = self.labels * self.levels + self.values[self.units]
            counted = weights[:, self.units] * (1.0 if self.record_weights is None else self.record_weights)
            counts = np.bincount((cells + offsets).ravel(), weights=counted.ravel(), minlength=rows * size)
        return counts.reshape(rows, self.classes, self.levels)


def per_file(coded: Coded) -> Coded:
    """The same codes with every file counting once, its weight shared among its records: images
    cut from one file are not independent observations of the property, and counted one by one
    they read as association (twelve crops of one photo in one class are one file in that class).
    Unchanged where every file holds one record."""
    sizes = np.bincount(coded.units, minlength=len(coded.values))
    if sizes.max(initial=1) <= 1:
        return coded
    return Coded(coded.labels, coded.units, coded.values, coded.classes, coded.levels, 1.0 / sizes[coded.units])


def cramers_v(tables: np.ndarray) -> np.ndarray:
    """Bias-corrected Cramér's V (Bergsma 2013) of one table or a stack of them; rows and columns
    that are empty do not count, and a table with one row or one column gives 0."""
    tables = np.asarray(tables, dtype=float)
    single = tables.ndim == 2
    stack = tables[None] if single else tables
    n = stack.sum(axis=(1, 2))
    rows, columns = stack.sum(axis=2), stack.sum(axis=1)
    r, k = (rows > 0).sum(axis=1), (columns > 0).sum(axis=1)
    expected = rows[:, :, None] * columns[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(expected > 0, stack**2 / expected, 0.0)
        chi2 = n * (ratio.sum(axis=(1, 2)) - 1.0)
        shrink = np.maximum(n - 1.0, 1.0)
        phi2 = np.maximum(0.0, chi2 / n - (k - 1) * (r - 1) / shrink)
        r_corrected = r - (r - 1) ** 2 / shrink
        k_corrected = k - (k - 1) ** 2 / shrink
        scale = np.minimum(r_corrected, k_corrected) - 1.0
        v = np.where((r > 1) & (k > 1) & (scale > 0) & (n > 1), np.sqrt(np.clip(phi2 / scale, 0.0, 1.0)), 0.0)
    return v[0] if single else v


def permutation_p(coded: Coded, observed: float, permutations: int, rng: np.random.Generator) -> float:
    """One-sided p-value of V against files' values permuted among files: (1 + #{V* ≥ V}) / (1 + B)."""
    above = 0
    for start in range(0, permutations, coded.chunk()):
        shuffled = np.stack([rng.permutation(coded.values) for _ in range(min(coded.chunk(), permutations - start))])
        above += int(np.count_nonzero(cramers_v(coded.tables(values=shuffled)) >= observed - 1e-12))
    return (1 + above) / (1 + permutations)


def _stratified_weights(strata: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, files) counts: per row, each stratum's files drawn with replacement as many times as it has files."""
    files = len(strata)
    order = np.argsort(strata, kind="stable")
    sizes = np.bincount(strata)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    slot_start, slot_size = starts[strata[order]], sizes[strata[order]]  # per slot of the sorted order
    picks = slot_start + np.floor(rng.random((rows, files)) * slot_size).astype(np.int64)
    chosen = order[picks]  # the file each slot draws
    offsets = np.arange(rows)[:, None] * files
    return np.bincount((chosen + offsets).ravel(), minlength=rows * files).reshape(rows, files).astype(float)


def bootstrap_interval(coded: Coded, strata: np.ndarray, resamples: int, rng: np.random.Generator,
                       level: float = 0.95) -> tuple[float, float]:
    """Interval of V over files drawn with replacement within their stratum (their records come
    along), clipped to [0, 1]. The classes are fixed: which files each holds is what is drawn.

    A resample repeats files, and repeated files look like association, so the resampled V sit
    above the V of the data. The interval is the percentile interval moved back by that shift
    (the mean resampled V minus the observed V): without it, a 95 % interval barely reaches the
    estimate it is about."""
    draws = []
    for start in range(0, resamples, coded.chunk()):
        weights = _stratified_weights(strata, min(coded.chunk(), resamples - start), rng)
        draws.append(cramers_v(coded.tables(weights=weights)))
    found = np.concatenate(draws)
    shift = float(found.mean()) - float(cramers_v(coded.table()))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(found, [tail, 1.0 - tail]) - shift
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def residuals(table: np.ndarray) -> np.ndarray:
    """Standardized (Pearson) residuals (observed − expected) / √expected; 0 where nothing is expected."""
    table = np.asarray(table, dtype=float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / max(table.sum(), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, (table - expected) / np.sqrt(expected), 0.0)


def benjamini_hochberg(pvalues: list[float], level: float) -> list[bool]:
    """Which of the p-values are discoveries at false-discovery rate `level` (Benjamini–Hochberg step-up)."""
    count = len(pvalues)
    order = sorted(range(count), key=lambda index: pvalues[index])
    passed = 0
    for rank, index in enumerate(order, start=1):
        if pvalues[index] <= level * rank / count:
            passed = rank
    chosen = set(order[:passed])
    return [index in chosen for index in range(count)]
