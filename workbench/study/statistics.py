"""How sure a study's numbers are: means over seeds with 95% intervals, and paired differences between methods.

- :func:`estimate`: n, mean and a confidence interval of per-seed values. With two seeds or more it is the
  Student t-interval over seeds; with one seed there is no spread to measure, so the estimate says
  ``single_seed`` and, for a test accuracy whose test-set size is known, gives the binomial interval
  ``p +- z sqrt(p (1 - p) / n_test)`` (the sampling error of the test set alone) instead of a zero-length one.
- :func:`paired_difference`: per seed, a method's value minus a reference method's value on the same
  (model, data, seed, budget); n, mean difference and its t-interval. ``distinguishable`` is False when the
  interval contains 0 or fewer than two seeds are paired.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

#: The confidence level of every interval.
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """n, mean and interval ``[low, high]`` of per-seed values; ``method`` is ``"t"`` (over seeds),
    ``"binomial"`` (one seed, test-set sampling error) or ``None`` (no interval: no values, or one seed of
    unknown test-set size). ``single_seed`` is True when n = 1."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    method: str | None

    @property
    def single_seed(self) -> bool:
        return self.n == 1

    def as_dict(self) -> dict[str, Any]:
        """The fields (and ``single_seed``) as a JSON-safe dict."""
        return {**asdict(self), "single_seed": self.single_seed}


@dataclass(frozen=True)
class Difference:
    """A paired difference: ``n`` seeds paired, ``mean`` difference and its t-interval ``[low, high]``;
    ``distinguishable`` is False when the interval contains 0 or n < 2."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    distinguishable: bool

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return asdict(self)


def _clean(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return array[np.isfinite(array)]


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and Student t-interval ``(mean, low, high)`` of ``values`` (at least two)."""
    array = _clean(values)
    if array.size < 2:
        raise ValueError(f"a t-interval needs at least two values, got {array.size}")
    mean = float(array.mean())
    half = float(stats.t.ppf(0.5 + level / 2, array.size - 1)) * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, mean - half, mean + half


def binomial_interval(p: float, n_test: int, level: float = LEVEL) -> tuple[float, float]:
    """``p +- z sqrt(p (1 - p) / n_test)`` clipped to [0, 1]: the test-set sampling error of one accuracy."""
    se = math.sqrt(max(p * (1.0 - p), 0.0) / n_test)
    half = float(stats.norm.ppf(0.5 + level / 2)) * se
    return max(0.0, p - half), min(1.0, p + half)


def estimate(values: Sequence[float], n_test: int | None = None, level: float = LEVEL) -> Estimate:
    """n, mean and interval of per-seed ``values`` (None and non-finite values are left out).

    Parameters
    ----------
    n_test
        Test-set size behind a single accuracy: with one value, the interval is :func:`binomial_interval`
        (``None``, or a value outside [0, 1]: no interval).
    """
    array = _clean(values)
    if array.size == 0:
        return Estimate(0, None, None, None, None)
    if array.size == 1:
        p = float(array[0])
        if n_test and n_test > 0 and 0.0 <= p <= 1.0:
            return Estimate(1, p, *binomial_interval(p, int(n_test), level), "binomial")
        return Estimate(1, p, None, None, None)
    return Estimate(int(array.size), *t_interval(array, level), "t")


def paired_difference(
    values: Mapping[Hashable, float], reference: Mapping[Hashable, float], level: float = LEVEL
) -> Difference:
    """``values[seed] - reference[seed]`` over the seeds both hold (None and non-finite values left out).

    Keys are whatever pairs the runs (the seed, when model, data and budget are fixed by the caller).
    """
    diffs = [
        float(values[key]) - float(reference[key])
        for key in values
        if key in reference
        and values[key] is not None
        and reference[key] is not None
        and math.isfinite(float(values[key]))
        and math.isfinite(float(reference[key]))
    ]
    if not diffs:
        return Difference(0, None, None, None, False)
    if len(diffs) == 1:
        return Difference(1, diffs[0], None, None, False)
    mean, low, high = t_interval(diffs, level)
    return Difference(len(diffs), mean, low, high, not (low <= 0.0 <= high))
