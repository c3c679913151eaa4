"""The array-only view of one prunable group that selectors read.

:class:`UnitView` is made by :meth:`workbench.graph.NetworkGraph.unit_view` (or by hand, from arrays)
and consumed by :mod:`workbench.select`. It holds numpy arrays only, never torch modules, so that
selectors know nothing of networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import SelectionError

METRICS = ("cosine", "correlation", "rbf", "linear")


def similarity_matrix(features: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Dense n x n similarity of the rows of ``features`` (n units x d features).

    Parameters
    ----------
    features
        One row per unit.
    metric
        ``"cosine"`` (rows normalized, zero rows stay zero), ``"correlation"`` (rows centred then cosine),
        ``"rbf"`` (Gaussian kernel exp(-|x-y|^2 / h) with h the median nonzero squared distance: the median
        heuristic) or ``"linear"`` (plain Gram matrix). All are symmetric positive semi-definite.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise SelectionError(f"features must be a 2-d array (units x features), got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise SelectionError(
            "features contain NaN or infinite values; check the weights or activations they came from."
        )
    if metric == "correlation":  # centred here, exactly, rather than through the Gram matrix
        x = x - x.mean(axis=1, keepdims=True)
        metric = "cosine"
    return gram_similarity(x @ x.T, metric)


def gram_similarity(
    gram: np.ndarray, metric: str = "cosine", sums: np.ndarray | None = None, count: int | None = None
) -> np.ndarray:
    """The similarity of :func:`similarity_matrix` from the Gram matrix of the features alone.

    Parameters
    ----------
    gram
        (n, n) Gram matrix X Xᵀ of the (n, d) features X (e.g. accumulated batch by batch over data).
    metric
        As in :func:`similarity_matrix`.
    sums, count
        Row sums of X (n,) and d: needed by ``"correlation"`` only (rows centred: X Xᵀ - s sᵀ / d).
    """
    gram = np.asarray(gram, dtype=np.float64)
    if metric == "linear":
        return gram.copy()
    if metric in ("cosine", "correlation"):
        if metric == "correlation":
            if sums is None or not count:
                raise SelectionError("the correlation similarity needs the row sums and length of the features.")
            sums = np.asarray(sums, dtype=np.float64)
            gram = gram - np.outer(sums, sums) / count
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 1e-150)
        sim = gram * scale[:, None] * scale[None, :]
        np.clip(sim, -1.0, 1.0, out=sim)
        return sim
    if metric == "rbf":
        sq = np.diag(gram)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
        np.fill_diagonal(d2, 0.0)
        off = d2[~np.eye(len(gram), dtype=bool)]
        positive = off[off > 0]
        bandwidth = float(np.median(positive)) if positive.size else 1.0
        return np.exp(-d2 / bandwidth)
    raise SelectionError(f"unknown similarity metric {metric!r}; use one of {', '.join(METRICS)}.")


def as_float_array(value: Any, name: str, group: str) -> np.ndarray:
    """``value`` as a float64 array; a SelectionError naming its dtype when it does not hold real numbers."""
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise SelectionError(f"group {group!r}: {name} is not a rectangular array of numbers ({exc}).") from None
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    if array.dtype.kind == "O":
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError):
            pass
    raise SelectionError(
        f"group {group!r}: {name} has dtype {array.dtype}, but selectors need real numbers (bool, int or float); "
        "convert it first, e.g. np.asarray(values, dtype=float), or encode categories as numbers."
    )


@dataclass
class UnitView:
    """Arrays describing the n units of one prunable group.

    Attributes
    ----------
    group
        Name of the prunable group (as in ``NetworkGraph.groups``).
    features
        (n, d) per-unit features the similarity is computed from.
    metric
        Similarity metric used by :meth:`similarity` (see :func:`similarity_matrix`).
    in_weights
        (n, d_in) flattened incoming weights of each unit (rows of the producing layer), or None.
    out_weights
        (n, d_out) flattened outgoing weights of each unit (the consumer's weights that read it), or None.
    bias
        (n,) bias of each unit, or None.
    bn_scale
        (n,) BatchNorm scale |gamma| of each unit, or None.
    activations
        (samples, n) activations of the units (after the nonlinearity, spatial positions as samples), or None.
    kernel
        (n, n) precomputed similarity; when None it is computed from ``features`` on first use.
    meta
        Free-form details (layer names, source, caps used).
    """

    group: str
    features: np.ndarray
    metric: str = "cosine"
    in_weights: np.ndarray | None = None
    out_weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    bn_scale: np.ndarray | None = None
    activations: np.ndarray | None = None
    kernel: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = as_float_array(self.features, "features", self.group)
        if self.features.ndim != 2 or self.features.shape[0] == 0:
            raise SelectionError(
                f"UnitView {self.group!r}: features must be a non-empty (units x features) array, got shape "
                f"{self.features.shape}."
            )
        n = self.features.shape[0]
        for name in ("in_weights", "out_weights", "activations", "bias", "bn_scale", "kernel"):
            value = getattr(self, name)
            if value is None:
                continue
            value = as_float_array(value, name, self.group)
            axis = 1 if name == "activations" else 0
            if value.ndim <= axis or value.shape[axis] != n:
                raise SelectionError(
                    f"UnitView {self.group!r}: {name} has shape {value.shape}, which does not match {n} units."
                )
            setattr(self, name, value)

    @property
    def n_units(self) -> int:
        """Number of units in the group."""
        return int(self.features.shape[0])

    def similarity(self, metric: str | None = None) -> np.ndarray:
        """The (n, n) similarity matrix; cached in ``kernel`` for the view's own metric."""
        if metric is None or metric == self.metric:
            if self.kernel is None:
                self.kernel = similarity_matrix(self.features, self.metric)
            return self.kernel
        return similarity_matrix(self.features, metric)
