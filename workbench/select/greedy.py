"""Lazy evaluation of an argmax whose values only decrease (Minoux's lazy greedy, vectorized)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Evaluate = Callable[[np.ndarray], tuple[np.ndarray, Any]]


def lazy_argmax(bounds: np.ndarray, selected: np.ndarray, evaluate: Evaluate, batch: int = 8) -> tuple[int, float, Any]:
    """The unselected item with the largest exact value, given upper bounds of all values.

    ``bounds[i]`` must be >= the exact value of item i (true when values only decrease, as marginal
    gains of a submodular function or residual variances of a pivoted Cholesky do). The items with the
    ``batch`` largest bounds are evaluated exactly (``evaluate(items) -> (values, extra)``, ``extra``
    indexed like ``items`` or None); if the best exact value is at least the largest bound left, it is
    the argmax; otherwise the batch doubles. ``bounds`` is updated in place with the exact values.
    Ties go to the lower index, as a plain ``np.argmax`` over exact values would.

    Returns the item, its exact value and its row of ``extra`` (None when ``extra`` is None).
    """
    available = np.flatnonzero(~selected)
    m = min(batch, available.size)
    while True:
        values = bounds[available]
        if m < available.size:
            part = np.argpartition(-values, m)
            top, rest_best = available[part[:m]], values[part[m]]
        else:
            top, rest_best = available, -np.inf
        exact, extra = evaluate(top)
        bounds[top] = exact
        best = int(np.argmax(exact))
        if exact[best] > rest_best or (
            exact[best] == rest_best and not _lower_tie_outside(bounds, available, top, exact[best])
        ):
            ties = np.flatnonzero(exact == exact[best])
            best = int(ties[np.argmin(top[ties])])
            return int(top[best]), float(exact[best]), None if extra is None else extra[best]
        m = min(2 * m, available.size)


def _lower_tie_outside(bounds: np.ndarray, available: np.ndarray, top: np.ndarray, value: float) -> bool:
    """Whether an unevaluated item with a bound equal to ``value`` has a lower index than the best tie in ``top``."""
    outside = np.setdiff1d(available, top, assume_unique=True)
    tied = outside[bounds[outside] >= value]
    ours = top[bounds[top] == value]
    return bool(tied.size) and (not ours.size or tied.min() < ours.min())
