"""Paired bootstrap over the units a task measures (query images, subjects, test images):
percentile 95 % intervals for every effect, from per-unit outcomes already computed.

Every statistic of a cell is resampled with the same draws, so a difference of two statistics
(a gap) gets the interval of the difference, not two independent ones. Resample r is a pure
function of (seed, r): the draws do not depend on how many resamples are taken at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np

LEVEL = 0.95
SEED = 0
DEFAULT_RESAMPLES = 1000
BLOCK_DRAWS = 1 << 22  # unit draws held at once: about 32 MB of counts


@dataclass(frozen=True)
class Resampling:
    """How many resamples to draw, from which seed, and what one unit is (for the cell's provenance)."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = SEED
    unit: str = "query image"

    @property
    def enabled(self) -> bool:
        return self.resamples > 0

    def provenance(self) -> dict[str, object]:
        return {"resamples": self.resamples, "seed": self.seed, "unit": self.unit, "level": LEVEL,
                "method": "percentile; resample r draws its units i.i.d. with numpy default_rng([seed, r])"}


def counts(units: int, resampling: Resampling) -> Iterator[np.ndarray]:
    """(B, units) float64 blocks: how often each unit is drawn in each resample, all resamples in order."""
    block = max(1, BLOCK_DRAWS // max(units, 1))
    for start in range(0, resampling.resamples, block):
        stop = min(start + block, resampling.resamples)
        drawn = np.stack([np.random.default_rng([resampling.seed, r]).integers(0, units, units) for r in range(start, stop)])
        flat = drawn + (np.arange(stop - start) * units)[:, None]  # resample b's draws land in row b
        yield np.bincount(flat.ravel(), minlength=(stop - start) * units).reshape(stop - start, units).astype(np.float64)


def resampled_sums(per_unit: np.ndarray, resampling: Resampling) -> np.ndarray:
    """(R, m) sums over each resample of the units of m statistics given per unit as an (m, units) array."""
    per_unit = np.atleast_2d(np.asarray(per_unit, dtype=np.float64))
    return np.concatenate([block @ per_unit.T for block in counts(per_unit.shape[1], resampling)])


def resampled_ratios(numerators: np.ndarray, denominators: np.ndarray, resampling: Resampling) -> np.ndarray:
    """(R, m) ratios of resampled sums, for statistics that are a total over a count (a mean over
    pairs, a per-class accuracy); NaN where a resample holds none of a count's units."""
    numerators, denominators = np.atleast_2d(numerators), np.atleast_2d(denominators)
    totals = resampled_sums(np.concatenate([numerators, denominators]), resampling)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals[:, : len(numerators)] / totals[:, len(numerators):]


def percentile_interval(samples: np.ndarray) -> np.ndarray:
    """(2, m) lower and upper percentile bounds at LEVEL of (R, m) resampled statistics."""
    tail = 100.0 * (1.0 - LEVEL) / 2.0
    return np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)


def mean_intervals(per_unit: Mapping[str, np.ndarray], resampling: Resampling) -> dict[str, list[float]]:
    """name -> [low, high] of the mean over units of each per-unit statistic (all of length n), from shared resamples."""
    if not resampling.enabled or not per_unit:
        return {}
    names = list(per_unit)
    stacked = np.stack([np.asarray(per_unit[name], dtype=np.float64) for name in names])
    bounds = percentile_interval(resampled_sums(stacked, resampling) / stacked.shape[1])
    return {name: [float(bounds[0, i]), float(bounds[1, i])] for i, name in enumerate(names)}


MARK = "*"


def rule(unit: str, versus: str = "0") -> str:
    """The sentence a leaderboard prints under a table whose columns carry intervals."""
    return (f"[low, high]: 95 % paired bootstrap interval (percentile; {unit}s resampled with replacement, "
            f"{DEFAULT_RESAMPLES} resamples unless --bootstrap says otherwise); {MARK}: the interval excludes {versus}.")


def excludes(interval: "list[float] | tuple[float, float] | None", value: float = 0.0) -> bool:
    """Whether the interval lies wholly on one side of `value` (the effect is distinguishable from it)."""
    return interval is not None and (interval[0] > value or interval[1] < value)
