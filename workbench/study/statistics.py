"""How sure a study's numbers are: means over seeds with 95% intervals, paired differences between methods, and
the multiplicity correction of the "distinguishable" verdicts of a table.

Two sources of noise
    A study's accuracy varies with the seed (training randomness) and with the test set (``n_test`` images drawn
    from a population). Averaging seeds shrinks the first; the second is shared by every seed, since every seed
    is scored on the same images. Only per-seed accuracies and ``n_test`` are stored (no per-image correctness),
    so the test set's share is bounded, not measured: ``c_i`` in [0, 1], the fraction of seeds right on image
    ``i``, has a variance of at most ``p (1 - p)`` at mean accuracy ``p``, so the mean accuracy's test-set
    variance is at most ``p (1 - p) / n_test`` (equal when every seed errs on the same images). The variance of
    a mean accuracy over ``k`` seeds is then taken as ``s^2 / k + p (1 - p) / n_test``, ``s`` the spread over
    seeds, with Welch-Satterthwaite degrees of freedom ``V^2 / ((s^2 / k)^2 / (k - 1))`` (the binomial term
    has infinitely many; no seed spread gives the normal quantile).

Intervals that respect the bounds
    :func:`estimate` of an accuracy (values in [0, 1], ``n_test`` known) is the Wilson score interval at the
    *effective* test-set size ``m = p (1 - p) / V`` (Kish's design effect; ``m = n_test`` when the seeds agree),
    at that t quantile, as recommended for clustered proportions (Dean & Pagano 2015): it lies in [0, 1] without
    clipping, is never a point (upper bound 1 and lower bound below 1 at ``p = 1``), is Wilson's interval for one
    seed, and nears the t-interval over seeds when seeds are many and ``n_test`` is large. Other values
    (costs, and mIoU, which is not a proportion of test images, so it gets no binomial term) keep the Student
    t-interval over seeds; one seed of them has no interval.

Paired differences
    :func:`paired_difference` pairs seeds (same model, data, seed and budget). For accuracies it adds
    ``p1 (1 - p1) / n + p2 (1 - p2) / n`` to ``s_d^2 / k``: the variance of a difference of two accuracies on the
    same ``n`` images, bounded assuming the two methods' errors are not negatively correlated across images
    (pruned copies of one base network find the same images hard; with no assumption the worst case,
    ``min(p1 + p2, 2 - p1 - p2) - (p1 - p2)^2``, is larger by a factor ``1 / p`` at ``p1 = p2 = p``, small at the
    accuracies studied). Per-image correctness would give the far tighter paired (McNemar) variance; it is not
    stored. The interval is MOVER (Zou & Donner 2008; Newcombe 1998 for paired proportions):
    ``d - sqrt(a1^2 + c2^2 - 2 r a1 c2)``, ``d + sqrt(c1^2 + a2^2 - 2 r c1 a2)`` from each method's Wilson
    distances below (``a``) and above (``c``) its mean (as above, at the quantile of the difference's
    Welch-Satterthwaite degrees of freedom) and the correlation ``r`` of the two means over seeds. With Wald
    distances in place of Wilson's it is ``d +- q sqrt(s_d^2 / k + p1 (1 - p1) / n + p2 (1 - p2) / n)``; with
    Wilson's it always lies within [-1, 1] (each distance is at most the room to 0 or 1), with no clipping, and
    is never a point. Its p-value is the interval's own: one minus the largest level whose interval excludes 0.
    Other values (mIoU, costs): the t-interval of the per-seed differences and the paired t-test.

Many comparisons
    :func:`holm` adjusts a table's p-values (Holm's step-down: family-wise error at most ``1 - level`` over all the
    table's comparisons, under any dependence; the comparisons of a table share a reference, so they are
    dependent, which Benjamini-Hochberg's false discovery rate control needs to be of a positive kind);
    :func:`control` applies it to a table's :class:`Difference` values.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import optimize, stats

#: The confidence level of every interval.
LEVEL = 0.95

#: The multiplicity correction applied to a table's "distinguishable" verdicts.
CORRECTION = "Holm"


@dataclass(frozen=True)
class Estimate:
    """n, mean and interval ``[low, high]`` of per-seed values; ``method`` is ``"wilson"`` (an accuracy: seeds and
    test set, :func:`proportion_interval`), ``"t"`` (over seeds) or ``None`` (no interval: no values, or one seed
    of a value that is not an accuracy of known test-set size). ``single_seed`` is True when n = 1."""

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
    """A paired difference: ``n`` seeds paired, ``mean`` difference and its interval ``[low, high]`` (``method``
    ``"mover"`` for accuracies, ``"t"`` otherwise) and two-sided ``p_value``.

    ``distinguishable`` is False when the interval contains 0 or n < 2; after :func:`control`, it is the verdict
    at ``p_adjusted`` (``correction`` over ``comparisons`` differences of one table).
    """

    n: int
    mean: float | None
    low: float | None
    high: float | None
    distinguishable: bool
    p_value: float | None = None
    method: str | None = None
    p_adjusted: float | None = None
    comparisons: int | None = None
    correction: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return asdict(self)


def _clean(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return array[np.isfinite(array)]


def _quantile(level: float, df: float = math.inf) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom (normal for infinite df)."""
    return float(stats.norm.ppf(0.5 + level / 2) if math.isinf(df) else stats.t.ppf(0.5 + level / 2, df))


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and Student t-interval ``(mean, low, high)`` of ``values`` (at least two)."""
    array = _clean(values)
    if array.size < 2:
        raise ValueError(f"a t-interval needs at least two values, got {array.size}")
    mean = float(array.mean())
    half = _quantile(level, array.size - 1) * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, mean - half, mean + half


def wilson_interval(p: float, n: float, level: float = LEVEL, quantile: float | None = None) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``p`` observed on ``n`` (possibly effective, non-integer) samples.

    ``(p + q^2 / 2n -+ q sqrt(p (1 - p) / n + q^2 / 4n^2)) / (1 + q^2 / n)``, ``q`` the normal quantile of ``level``
    unless ``quantile`` is given. Within [0, 1], never a point for finite ``n``.
    """
    if not 0.0 <= p <= 1.0 or not n > 0:
        raise ValueError(f"a Wilson interval needs a proportion in [0, 1] and a positive size, got {p!r} and {n!r}")
    q = _quantile(level) if quantile is None else quantile
    shrink = 1.0 + q * q / n
    centre = (p + q * q / (2.0 * n)) / shrink
    half = q / shrink * math.sqrt(p * (1.0 - p) / n + q * q / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_interval(p: float, n_test: int, level: float = LEVEL) -> tuple[float, float]:
    """The test-set sampling interval of one accuracy ``p`` on ``n_test`` samples: :func:`wilson_interval` (the
    Wald interval ``p +- z sqrt(p (1 - p) / n)`` it replaces collapses to a point at ``p`` = 0 or 1)."""
    return wilson_interval(p, n_test, level)


def _is_proportion(array: np.ndarray, n_test: int | None) -> bool:
    return bool(n_test and n_test > 0 and array.size and np.all((array >= 0.0) & (array <= 1.0)))


@dataclass(frozen=True)
class _Proportion:
    """A mean accuracy over seeds: ``mean``, ``seed_var`` (``s^2 / k``, 0 for one seed) and ``binomial_var``."""

    mean: float
    seed_var: float
    binomial_var: float
    k: int

    @classmethod
    def of(cls, array: np.ndarray, n_test: int) -> _Proportion:
        mean = float(array.mean())
        seed_var = float(array.var(ddof=1)) / array.size if array.size > 1 else 0.0
        return cls(mean, seed_var, mean * (1.0 - mean) / n_test, int(array.size))

    @property
    def var(self) -> float:
        return self.seed_var + self.binomial_var

    @property
    def df(self) -> float:
        """Welch-Satterthwaite degrees of freedom of :attr:`var` (the binomial term has infinitely many)."""
        return satterthwaite_df(self.var, self.seed_var, self.k)

    def interval(self, n_test: int, quantile: float) -> tuple[float, float]:
        """Wilson at the effective size ``p (1 - p) / var`` (``n_test`` when the seeds agree)."""
        effective = self.mean * (1.0 - self.mean) / self.var if self.var > 0 else float(n_test)
        return wilson_interval(self.mean, effective, quantile=quantile)


def satterthwaite_df(total_var: float, seed_var: float, k: int) -> float:
    """``total_var^2 / (seed_var^2 / (k - 1))``: the degrees of freedom of a variance whose only estimated part is
    ``seed_var`` (``s^2 / k`` over ``k`` seeds); infinite when that part is 0 or there is one seed."""
    if seed_var <= 0 or k < 2:
        return math.inf
    return total_var * total_var / (seed_var * seed_var / (k - 1))


def proportion_interval(values: Sequence[float], n_test: int, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and interval ``(mean, low, high)`` of per-seed accuracies on one test set of ``n_test`` samples.

    Wilson's interval at the effective size ``p (1 - p) / V``, ``V = s^2 / k + p (1 - p) / n_test`` (seeds and
    test set), at the t quantile of ``V``'s Welch-Satterthwaite degrees of freedom; see the module text.
    """
    array = _clean(values)
    if not _is_proportion(array, n_test):
        raise ValueError(f"a proportion interval needs values in [0, 1] and a positive n_test, got {n_test!r}")
    part = _Proportion.of(array, int(n_test))
    return part.mean, *part.interval(int(n_test), _quantile(level, part.df))


def estimate(values: Sequence[float], n_test: int | None = None, level: float = LEVEL) -> Estimate:
    """n, mean and interval of per-seed ``values`` (None and non-finite values are left out).

    Parameters
    ----------
    n_test
        Test-set size behind accuracies in [0, 1]: the interval is :func:`proportion_interval` (one seed:
        Wilson's). ``None`` (mIoU, costs) or values outside [0, 1]: the t-interval over seeds, none for one seed.
    """
    array = _clean(values)
    if array.size == 0:
        return Estimate(0, None, None, None, None)
    if _is_proportion(array, n_test):
        return Estimate(int(array.size), *proportion_interval(array, int(n_test), level), "wilson")
    if array.size == 1:
        return Estimate(1, float(array[0]), None, None, None)
    return Estimate(int(array.size), *t_interval(array, level), "t")


def _pairs(values: Mapping[Hashable, float], reference: Mapping[Hashable, float]) -> tuple[np.ndarray, np.ndarray]:
    keys = [
        key
        for key in values
        if key in reference
        and values[key] is not None
        and reference[key] is not None
        and math.isfinite(float(values[key]))
        and math.isfinite(float(reference[key]))
    ]
    return (
        np.asarray([float(values[k]) for k in keys], dtype=float),
        np.asarray([float(reference[k]) for k in keys], dtype=float),
    )


def _mover(one: np.ndarray, two: np.ndarray, n_test: int) -> tuple[float, Any]:
    """Degrees of freedom of the paired accuracy difference ``one - two`` and its MOVER bounds as a function of
    the quantile (see the module text)."""
    first, second = _Proportion.of(one, n_test), _Proportion.of(two, n_test)
    k = one.size
    seed_var = float(np.var(one - two, ddof=1)) / k
    df = satterthwaite_df(seed_var + first.binomial_var + second.binomial_var, seed_var, k)
    covariance = float(np.cov(one, two, ddof=1)[0, 1]) / k
    scale = math.sqrt(first.var * second.var)
    r = min(1.0, max(-1.0, covariance / scale)) if scale > 0 else 0.0
    d = first.mean - second.mean

    def bounds(q: float) -> tuple[float, float]:
        low1, high1 = first.interval(n_test, q)
        low2, high2 = second.interval(n_test, q)
        a1, c1, a2, c2 = first.mean - low1, high1 - first.mean, second.mean - low2, high2 - second.mean
        below = math.sqrt(max(a1 * a1 + c2 * c2 - 2 * r * a1 * c2, 0.0))
        above = math.sqrt(max(c1 * c1 + a2 * a2 - 2 * r * c1 * a2, 0.0))
        return d - below, d + above

    return df, bounds


def _interval_p_value(mean: float, df: float, bounds: Any) -> float:
    """One minus the largest level whose interval ``bounds(quantile)`` excludes 0 (1 for a zero mean)."""
    if mean == 0:
        return 1.0

    def margin(level: float) -> float:  # > 0 while the interval excludes 0; falls as the level grows
        low, high = bounds(_quantile(level, df))
        return low if mean > 0 else -high

    bottom, top = 1e-12, 1.0 - 1e-12
    if margin(bottom) <= 0:  # the interval holds 0 at every level (a mean that rounds to 0 either way)
        return 1.0
    if margin(top) > 0:
        return 1e-12
    return 1.0 - float(optimize.brentq(margin, bottom, top, xtol=1e-12))


def paired_difference(
    values: Mapping[Hashable, float],
    reference: Mapping[Hashable, float],
    level: float = LEVEL,
    *,
    n_test: int | None = None,
) -> Difference:
    """``values[seed] - reference[seed]`` over the seeds both hold (None and non-finite values left out).

    Keys are whatever pairs the runs (the seed, when model, data and budget are fixed by the caller). With
    ``n_test`` and values in [0, 1] (accuracies on one test set) the interval is MOVER over seeds and test set;
    otherwise (mIoU, costs) the t-interval of the per-seed differences. Fewer than two pairs: no interval, not
    distinguishable.
    """
    one, two = _pairs(values, reference)
    if one.size == 0:
        return Difference(0, None, None, None, False)
    mean = float((one - two).mean())
    if one.size == 1:
        return Difference(1, mean, None, None, False)
    if _is_proportion(np.concatenate([one, two]), n_test):
        df, bounds = _mover(one, two, int(n_test))
        low, high = bounds(_quantile(level, df))
        p_value, method = _interval_p_value(mean, df, bounds), "mover"
    else:
        _, low, high = t_interval(one - two, level)
        se = float((one - two).std(ddof=1)) / math.sqrt(one.size)
        p_value = float(2 * stats.t.sf(abs(mean) / se, one.size - 1)) if se > 0 else float(mean == 0)
        method = "t"
    return Difference(int(one.size), mean, low, high, not (low <= 0.0 <= high), p_value, method)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where the adjusted
    value is below ``alpha`` keeps the family-wise error at most ``alpha`` under any dependence.
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted


def control(differences: Sequence[Difference | None], level: float = LEVEL) -> list[Difference | None]:
    """The ``differences`` of one table with :func:`holm` applied over those that have a p-value (two pairs or
    more): ``p_adjusted``, ``comparisons`` (how many), ``correction`` and the corrected ``distinguishable``
    (``p_adjusted < 1 - level``); the others (and None) are returned as they are."""
    tested = [i for i, d in enumerate(differences) if d is not None and d.p_value is not None]
    adjusted = holm([differences[i].p_value for i in tested])  # type: ignore[union-attr]
    out = list(differences)
    for i, p in zip(tested, adjusted):
        out[i] = replace(
            differences[i],  # type: ignore[arg-type]
            p_adjusted=p,
            comparisons=len(tested),
            correction=CORRECTION,
            distinguishable=p < 1.0 - level,
        )
    return out


def multiplicity_note(comparisons: int, level: float = LEVEL) -> str:
    """What the "distinguishable" verdicts of a table with ``comparisons`` tested differences mean, in words."""
    if not comparisons:
        return "No paired difference has two seeds or more: nothing is called distinguishable."
    return (
        f"Distinguishable: {CORRECTION}-corrected over the {comparisons} paired comparison"
        f"{'s' if comparisons != 1 else ''} of this table (family-wise error at most {1 - level:.0%}); intervals "
        f"are {level:.0%} each, so an interval that just excludes 0 can still be not distinguishable."
    )
