"""Greedy maximization of set functions over units: facility location, log-det and input change.

- facility location: F(S) = Σ_i max_{j in S} s_ij (similarities made non-negative) -- monotone submodular;
- log-det: F(S) = log det(I + L_S) -- monotone submodular for PSD L;
- input change (El Halabi, Srinivas & Lacoste-Julien 2022, "Data-efficient structured pruning via
  submodular optimization"): with activations A (samples x n) and outgoing weights W (n x d_out),
  F(S) = ||A W||² - min_W' ||A W - A_S W'||²_F, the part of the next layer's input that the kept
  units can reproduce after re-fitting their outgoing weights -- monotone, weakly submodular. It is
  computed from the units' Gram matrix AᵀA (n x n) and W Wᵀ: the consumer's input A W is never formed,
  so memory does not grow with samples, positions or fan-out beyond the view's own activations.

The submodular objectives are maximized by lazy greedy (Minoux 1978, vectorized: candidates with
the largest stale gains are re-evaluated in batches), which returns the plain greedy's set. The input
change is only weakly submodular (a gain can grow), so it always runs the plain greedy; its gains are
all updated at once in O(n²) per step.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve

from workbench.errors import SelectionError
from workbench.select.base import Selector, register_selector
from workbench.select.chunks import activation_gram
from workbench.select.graphs import NONNEGATIVE
from workbench.select.greedy import lazy_argmax
from workbench.select.validation import require
from workbench.unitview import UnitView, gram_similarity
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
    """F(S) = ||Y||² - min_W' ||Y - A_S W'||² with Y = A W, computed from C = AᵀA and M = W Wᵀ only.

    Neither A W (samples x positions x fan-out) nor a residual of A is ever formed: the state is the
    residual Gram matrix K = C - C[:, S] C[S, S]⁻¹ C[S, :] (the Gram matrix of A's columns projected off
    the span of the chosen ones) and the diagonal h of K M K. With r_j the residual column of unit j and
    Y_res the residual of Y, r_jᵀ Y_res = (K W)_j, so the gain of unit j is
    ||r_jᵀ Y_res||² / (||r_j||² + reg) = h_j / (K_jj + reg) (the exact projection gain when reg = 0; 0 when
    r_j has vanished, i.e. unit j is a linear combination of the chosen ones). Memory: a few n x n arrays;
    time: O(n² d_out) once, O(n²) per step.

    Parameters
    ----------
    gram
        (n, n) Gram matrix AᵀA of the activations (samples x units), e.g. accumulated batch by batch.
    W
        (n, d_out) outgoing weights.
    reg
        Ridge relative to the mean of diag(gram).
    """

    def __init__(self, gram: np.ndarray, W: np.ndarray, reg: float) -> None:
        self.C = np.asarray(gram, dtype=np.float64)
        self.W = W
        self.n = self.C.shape[0]
        self.M = W @ W.T
        self.K = self.C.copy()
        self.h = np.einsum("ij,ij->i", self.C @ self.M, self.C)
        self.norm0 = np.clip(np.diag(self.C).copy(), 0.0, None)
        self.norms = self.norm0.copy()
        self.reg = reg * max(float(self.norm0.mean()), 1e-300)
        self.total = float(np.einsum("ij,ij->", self.C, self.M))  # ||A W||²

    def gains(self, items: np.ndarray) -> np.ndarray:
        norms = self.norms[items]
        alive = norms > 1e-10 * np.maximum(self.norm0[items], 1e-300)
        values = np.clip(self.h[items], 0.0, None) / (np.where(alive, norms, 1.0) + self.reg)
        return np.where(alive, values, 0.0)

    def add(self, j: int) -> None:
        norm = self.norms[j]
        if norm <= 1e-10 * max(self.norm0[j], 1e-300):
            return  # nothing new in the span
        u = self.K[j] / np.sqrt(norm)
        z = self.K @ (self.M @ u)
        self.h += (u @ self.M @ u) * u * u - 2.0 * u * z
        self.K -= np.outer(u, u)
        self.norms = np.maximum(self.norms - u * u, 0.0)

    def residual(self) -> float:
        """||A W - P_S A W||²: what the kept units cannot reproduce."""
        return max(float(np.einsum("ij,ij->", self.K, self.M)), 0.0)

    def value(self) -> float:
        return self.total - self.residual()

    def refit(self, keep: np.ndarray) -> np.ndarray:
        """argmin_W' ||A W - A_S W'||² + reg ||W'||² for S = keep (|S| x d_out)."""
        gram = self.C[np.ix_(keep, keep)] + self.reg * np.eye(keep.size)
        return solve(gram, self.C[keep] @ self.W, assume_a="pos")


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

    def _check_params(self) -> None:
        self._choice("objective", OBJECTIVES)
        self._flag("lazy")
        self._choice("nonnegative", NONNEGATIVE)
        self._real("reg", 0.0)

    def _uses_similarity(self) -> bool:
        return self.objective != "input_change"

    def _gram_and_weights(self, view: UnitView) -> tuple[np.ndarray, np.ndarray]:
        """(n, n) Gram matrix AᵀA of the activations, accumulated over row chunks, and (n, d_out) weights."""
        hint = "The input-change objective needs activations (samples x units) and the outgoing weights."
        A = require(view, "activations", self.name, hint)
        W = require(view, "out_weights", self.name, hint)
        return activation_gram(A.reshape(A.shape[0], view.n_units)), W.reshape(view.n_units, -1)

    def _assignment_similarity(self, view: UnitView) -> np.ndarray:
        if self.objective == "input_change":  # units whose activations move together
            return gram_similarity(self._gram, "cosine")
        return super()._assignment_similarity(view)

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        objective = self.objective
        lazy = bool(self.lazy)
        if objective == "facility_location":
            sim = self._kernel(view)
            sim = np.clip(sim, 0.0, None) if self.nonnegative == "clip" else sim - sim.min()
            function = FacilityLocation(sim)
        elif objective == "logdet":
            function = LogDet(self._kernel(view, psd=True), k)
        else:
            self._gram, W = self._gram_and_weights(view)
            function = InputChange(self._gram, W, float(self.reg))
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
            self.input_change_ = function.residual()
        return keep, scores, None
