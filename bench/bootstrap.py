"""Paired bootstrap over the units a task measures (source photos, subjects, images): 95 %
percentile intervals for every effect, from per-unit outcomes already computed, and the settings
of the permutation tests that mark them (bench.measures).

Every statistic of a cell is resampled with the same draws, so a difference of two statistics
(a gap) gets the interval of the difference, not two independent ones. Resample r is a pure
function of (seed, r): the draws do not depend on how many resamples are taken at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

LEVEL = 0.95
SEED = 0
DEFAULT_RESAMPLES = 1000
DEFAULT_PERMUTATIONS = 499  # the smallest p-value a test reaches is 1 / (permutations + 1)
BLOCK_DRAWS = 1 << 22  # unit draws held at once: about 32 MB of counts


@dataclass(frozen=True)
class Resampling:
    """How many resamples to draw, from which seed, and what one unit is (for the cell's provenance)."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = SEED
    unit: str = "image"
    permutations: int = DEFAULT_PERMUTATIONS  # for the tests that mark effects (bench.measures)

    @property
    def enabled(self) -> bool:
        return self.resamples > 0

    def provenance(self) -> dict[str, object]:
        return {"resamples": self.resamples, "seed": self.seed, "unit": self.unit, "level": LEVEL, "permutations": self.permutations,
                "method": "percentile interval (2.5th, 97.5th), widened to hold the value; resample r draws units i.i.d. "
                          "with numpy default_rng([seed, r]); marks: one-sided permutation tests (bench.measures)"}


def _draws(rng: np.random.Generator, units: int, strata: list[np.ndarray] | None) -> np.ndarray:
    """One resample's unit draws: i.i.d. over all units, or within each stratum (each keeps its size)."""
    if strata is None:
        return rng.integers(0, units, units)
    return np.concatenate([members[rng.integers(0, len(members), len(members))] for members in strata])


def _strata(labels: np.ndarray | None) -> list[np.ndarray] | None:
    """The units of each stratum, strata in sorted label order (so the draws are a function of the labels)."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    return [np.flatnonzero(labels == value) for value in np.unique(labels)]


def counts(units: int, resampling: Resampling, strata: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """(B, units) float64 blocks: how often each unit is drawn in each resample, all resamples in
    order. `strata`: a label per unit; each resample then draws within every label as many units
    as it has, so a statistic over labels never loses one."""
    members = _strata(strata)
    block = max(1, BLOCK_DRAWS // max(units, 1))
    for start in range(0, resampling.resamples, block):
        stop = min(start + block, resampling.resamples)
        drawn = np.stack([_draws(np.random.default_rng([resampling.seed, r]), units, members) for r in range(start, stop)])
        flat = drawn + (np.arange(stop - start) * units)[:, None]  # resample b's draws land in row b
        yield np.bincount(flat.ravel(), minlength=(stop - start) * units).reshape(stop - start, units).astype(np.float64)


def resampled_sums(per_unit: np.ndarray, resampling: Resampling, strata: np.ndarray | None = None) -> np.ndarray:
    """(R, m) sums over each resample of the units of m statistics given per unit as an (m, units) array."""
    per_unit = np.atleast_2d(np.asarray(per_unit, dtype=np.float64))
    return np.concatenate([block @ per_unit.T for block in counts(per_unit.shape[1], resampling, strata)])


def resampled_ratios(numerators: np.ndarray, denominators: np.ndarray, resampling: Resampling,
                     strata: np.ndarray | None = None) -> np.ndarray:
    """(R, m) ratios of resampled sums, for statistics that are a total over a count (a mean over
    pairs, a per-class accuracy); NaN where a resample holds none of a count's units (never, for
    a count within one stratum of `strata`)."""
    numerators, denominators = np.atleast_2d(numerators), np.atleast_2d(denominators)
    totals = resampled_sums(np.concatenate([numerators, denominators]), resampling, strata)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals[:, : len(numerators)] / totals[:, len(numerators):]


def percentile_interval(samples: np.ndarray, point: float) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of a resampled statistic, widened to hold the point: a
    resample never leaves a bounded statistic's range, so neither does the interval."""
    finite = np.asarray(samples, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return (float(point), float(point))
    low, high = np.percentile(finite, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return (float(min(low, point)), float(max(high, point)))


@dataclass(frozen=True)
class Resampled:
    """Statistics resampled from shared draws (name -> (R,) values), their point estimates, the
    number of units drawn, and the tests that mark some of them (name -> bench.measures.Test)."""

    samples: dict[str, np.ndarray]
    points: dict[str, float]
    units: int
    tests: Mapping[str, Any] = field(default_factory=dict)  # name -> bench.measures.Test (which builds on this module)

    def intervals(self) -> dict[str, list[float]]:
        """name -> [low, high]: each statistic's 95 % percentile interval (see `percentile_interval`)."""
        return {name: list(percentile_interval(samples, self.points[name])) for name, samples in self.samples.items()}

    def kept(self, *names: str) -> dict[str, list[float]]:
        """The resampled values of `names`, for the cell: resample r of every encoder on the same
        units draws the same units, so the trace ranking can rank encoders resample by resample."""
        return {name: self.samples[name].tolist() for name in names if name in self.samples}


def resample_means(per_unit: Mapping[str, np.ndarray], resampling: Resampling, strata: np.ndarray | None = None) -> Resampled:
    """The mean over units of each per-unit statistic (all of length n), in every resample
    (drawn within each stratum when `strata` labels the units), and over all units."""
    names = list(per_unit)
    stacked = np.stack([np.asarray(per_unit[name], dtype=np.float64) for name in names]) if names else np.zeros((0, 0))
    points = {name: float(stacked[i].mean()) for i, name in enumerate(names)}
    if not resampling.enabled or not names:
        return Resampled({}, points, stacked.shape[1])
    means = resampled_sums(stacked, resampling, strata) / stacked.shape[1]
    return Resampled({name: means[:, i] for i, name in enumerate(names)}, points, stacked.shape[1])


def mean_intervals(per_unit: Mapping[str, np.ndarray], resampling: Resampling, strata: np.ndarray | None = None) -> dict[str, list[float]]:
    """name -> [low, high] of the mean over units of each per-unit statistic (all of length n),
    from shared resamples (drawn within each stratum when `strata` labels the units)."""
    return resample_means(per_unit, resampling, strata).intervals()


def named(names: list[str], bounds: np.ndarray) -> dict[str, list[float]]:
    """The (2, m) bounds as name -> [low, high]."""
    return {name: [float(bounds[0, i]), float(bounds[1, i])] for i, name in enumerate(names)}


MARK = "*"


ROUNDING = 1e-9  # relative: bounds this close to the reference are rounding, not distance


def excludes(interval: "list[float] | tuple[float, float] | None", value: float = 0.0, above: bool = False) -> bool:
    """Whether the interval lies wholly on one side of `value` (the effect is distinguishable from
    it); with `above`, wholly above it. A bound within rounding of `value` does not exclude it: a
    statistic that cannot vary (a probe naming one class for every image scores chance per class
    in every resample) gets a zero-width interval whose float sums can land a hair off chance."""
    if interval is None:
        return False
    margin = ROUNDING * max(1.0, abs(value))
    return interval[0] > value + margin or (not above and interval[1] < value - margin)
