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
DEFAULT_RESAMPLES = 500  # a percentile interval: its bounds are the 13th draw from either end
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


MARK = "*"
