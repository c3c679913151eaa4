"""Greedy maximization of set functions over units: facility location, log-det and input change.

- facility location: F(S) = Σ_i max_{j in S} s_ij (similarities made non-negative) -- monotone submodular;
- log-det: F(S) = log det(I + L_S) -- monotone submodular for PSD L;
- input change (El Halabi, Srinivas & Lacoste-Julien 2022, "Data-efficient structured pruning via
  submodular optimization"): with activations A (samples x n) and outgoing weights W (n x d_out),
  F(S) = ||A W||² - min_W' ||A W - A_S W'||²_F, the part of the next layer's input that the kept
  units can reproduce after re-fitting their outgoing weights -- monotone, weakly submodular.

The submodular objectives are maximized by lazy greedy (Minoux 1978, vectorized: candidates with
the largest stale gains are re-evaluated in batches), which returns the plain greedy's set. The input
change is only weakly submodular (a gain can grow), so it always runs the plain greedy; its gains are
all updated at once in O(samples * n) per step.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve

from workbench.errors import SelectionError
from workbench.select.base import Selector, register_selector
from workbench.select.graphs import NONNEGATIVE
from workbench.select.greedy import lazy_argmax
from workbench.select.validation import require
from workbench.unitview import UnitView, similarity_matrix
from workbench.utils import RandomState

OBJECTIVES = ("facility_location", "logdet", "input_change")


class FacilityLocation:
    """F(S) = Σ_i max_{j in S} sim[i, j] over a non-negative similarity (F(∅) = 0)."""

    def __init__(self, sim: np.ndarray) -> None:
        if np.any(sim < 0):
            raise SelectionError("facility location needs non-negative similarities.")
        self.sim = sim
        self.n = sim.shape[0]
        self.cover = np.zeros(self.n)

    def gains(self, items: np.ndarray) -> np.ndarray:
        return np.maximum(self.sim[:, items] - self.cover[:, None], 0.0).sum(axis=0)

    def add(self, j: int) -> None:
        np.maximum(self.cover, self.sim[:, j], out=self.cover)

    def value(self) -> float:
        return float(self.cover.sum())


class LogDet:
    """F(S) = log det(I + L_S), with an incremental Cholesky factor of (I + L) on S."""

    def __init__(self, L: np.ndarray, k: int) -> None:
        self.L = L
        self.n = L.shape[0]
        self.rows = np.zeros((self.n, k))
        self.residual = 1.0 + np.diag(L).copy()
        self.t = 0
        self.total = 0.0

    def gains(self, items: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.residual[items], 1e-300))

    def add(self, j: int) -> None:
        d = np.sqrt(self.residual[j])
        column = (self.L[:, j] + (np.arange(self.n) == j) - self.rows[:, : self.t] @ self.rows[j, : self.t]) / d
        self.rows[:, self.t] = column
        self.t += 1
        self.total += 2.0 * np.log(d)
        self.residual = self.residual - column * column
        self.residual[j] = 0.0

    def value(self) -> float:
        return self.total


class InputChange:
    """F(S) = ||Y||² - min_W' ||Y - A_S W'||² with Y = A W (the next layer's input from these units).

    The state is the projection of A and Y off the span of the chosen columns; the gain of unit j is
    ||r_jᵀ Y_res||² / (||r_j||² + reg) with r_j its residual column (exact projection gain when reg = 0;
    0 when r_j has vanished, i.e. unit j is a linear combination of the chosen ones).
    """

    def __init__(self, A: np.ndarray, W: np.ndarray, reg: float) -> None:
        self.A, self.W = A, W
        self.n = A.shape[1]
        self.A_res = A.copy()
        self.Y = A @ W
        self.Y_res = self.Y.copy()
        self.G = self.A_res.T @ self.Y_res
        self.norm0 = (A * A).sum(axis=0)
        self.norms = self.norm0.copy()
        self.reg = reg * max(float(self.norm0.mean()), 1e-300)

    def gains(self, items: np.ndarray) -> np.ndarray:
        norms = self.norms[items]
        alive = norms > 1e-10 * np.maximum(self.norm0[items], 1e-300)
        values = (self.G[items] ** 2).sum(axis=1) / (np.where(alive, norms, 1.0) + self.reg)
        return np.where(alive, values, 0.0)

    def add(self, j: int) -> None:
        norm = self.norms[j]
        if norm <= 1e-10 * max(self.norm0[j], 1e-300):
            return  # nothing new in the span
        q = self.A_res[:, j] / np.sqrt(norm)
        u = q @ self.A_res
        v = q @ self.Y_res
        self.A_res -= np.outer(q, u)
        self.Y_res -= np.outer(q, v)
        self.G -= np.outer(u, v)
        self.norms = np.maximum(self.norms - u * u, 0.0)

    def value(self) -> float:
        return float((self.Y * self.Y).sum() - (self.Y_res * self.Y_res).sum())

    def refit(self, keep: np.ndarray) -> np.ndarray:
        """argmin_W' ||A W - A_S W'||² + reg ||W'||² for S = keep (|S| x d_out)."""
        A_s = self.A[:, keep]
        gram = A_s.T @ A_s + self.reg * np.eye(keep.size)
        return solve(gram, A_s.T @ self.Y, assume_a="pos")


def greedy_maximize(objective, k: int, lazy: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximization of ``objective`` (gains / add interface) for k steps.

    Returns the order of selection and each chosen item's gain. ``lazy`` uses stale gains as upper
    bounds (valid for submodular objectives); ties go to the lower index in both variants.
    """
    n = objective.n
    selected = np.zeros(n, dtype=bool)
    bounds = objective.gains(np.arange(n)).astype(np.float64)
    order, gains = [], []
    for _ in range(k):
        if lazy:
            j, gain, _ = lazy_argmax(bounds, selected, lambda items: (objective.gains(items), None))
        else:
            available = np.flatnonzero(~selected)
            values = objective.gains(available)
            best = int(np.argmax(values))
            j, gain = int(available[best]), float(values[best])
        objective.add(j)
        selected[j] = True
        order.append(j)
        gains.append(gain)
    return np.asarray(order, dtype=int), np.asarray(gains)


@register_selector(
    "submodular", description="greedy facility location, log-det or input-change (El Halabi et al. 2022)"
)
class SubmodularSelector(Selector):
    """Keep the k units chosen greedily for a set function.

    Parameters
    ----------
    objective
        ``"facility_location"`` (representativeness), ``"logdet"`` (diversity, log det(I + L_S) with L
        the view's PSD kernel) or ``"input_change"`` (reconstruction of the next layer's input; needs
        ``view.activations`` and ``view.out_weights``).
    lazy
        Lazy greedy for the submodular objectives (same set, fewer evaluations). Input change always
        uses the plain greedy.
    nonnegative
        How facility location makes similarities non-negative: ``"clip"`` (negatives to 0) or
        ``"shift"`` (subtract the smallest similarity).
    reg
        Ridge of input change, relative to the mean squared activation column norm: it damps the
        gains of nearly dependent units and regularizes the re-fitted weights.

    Fitted attributes: ``order_`` and ``gains_`` (greedy order and marginal gains), ``value_``
    (F of the kept set), ``scores_`` (the gain when chosen for kept units, the final marginal gain for
    dropped ones); for input change also ``new_out_weights_`` (k x d_out, rows in the order of the
    sorted kept units): the outgoing weights re-fitted so that A_S W' best reproduces A W.
    """

    def __init__(
        self,
        budget: int | float = 0.5,
        objective: str = "facility_location",
        lazy: bool = True,
        nonnegative: str = "clip",
        reg: float = 1e-8,
        random_state: RandomState = None,
    ) -> None:
        super().__init__(budget, random_state)
        self.objective = objective
        self.lazy = lazy
        self.nonnegative = nonnegative
        self.reg = reg

    def _uses_similarity(self) -> bool:
        return self.objective != "input_change"

    def _activations_and_weights(self, view: UnitView) -> tuple[np.ndarray, np.ndarray]:
        hint = "The input-change objective needs activations (samples x units) and the outgoing weights."
        A = require(view, "activations", self.name, hint)
        W = require(view, "out_weights", self.name, hint)
        return A.reshape(A.shape[0], view.n_units), W.reshape(view.n_units, -1)

    def _assignment_similarity(self, view: UnitView) -> np.ndarray:
        if self.objective == "input_change":  # units whose activations move together
            A, _ = self._activations_and_weights(view)
            return similarity_matrix(A.T, "cosine")
        return super()._assignment_similarity(view)

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        objective = self._choice("objective", OBJECTIVES)
        self._choice("nonnegative", NONNEGATIVE)
        lazy = bool(self.lazy)
        if objective == "facility_location":
            sim = self._kernel(view)
            sim = np.clip(sim, 0.0, None) if self.nonnegative == "clip" else sim - sim.min()
            function = FacilityLocation(sim)
        elif objective == "logdet":
            function = LogDet(self._kernel(view, psd=True), k)
        else:
            if not (isinstance(self.reg, (int, float, np.floating)) and float(self.reg) >= 0):
                raise SelectionError(f"selector 'submodular': reg must be a number >= 0, got {self.reg!r}.")
            A, W = self._activations_and_weights(view)
            function = InputChange(A, W, float(self.reg))
            lazy = False
        order, gains = greedy_maximize(function, k, lazy=lazy)
        self.order_, self.gains_ = order, gains
        self.value_ = function.value()
        keep = np.sort(order)
        scores = np.zeros(view.n_units)
        dropped = np.setdiff1d(np.arange(view.n_units), order)
        if dropped.size:
            scores[dropped] = function.gains(dropped)
        scores[order] = gains
        if objective == "input_change":
            self.new_out_weights_ = function.refit(keep)
            self.input_change_ = float((function.Y**2).sum()) - self.value_
        return keep, scores, None
