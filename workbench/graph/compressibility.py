"""How compressible each prunable group of a network looks, read from its unit views.

Three kinds of measure, one row per prunable group (:func:`compressibility`):

- **effective rank** (Roy & Vetterli 2007) of the units' weight features (n units x d) and of their
  activations (samples x n): ``exp(H(p))`` with ``p`` the singular values normalized to sum one. A group of
  n units whose effective rank is much smaller than n spans few directions: few units could carry it.
  ``*_ratio`` columns divide by n.
- **block structure** -- the modularity of the units' similarity graph (absolute correlation of their
  activations, or cosine of weights without data) under the Louvain partition: near 0 for a graph without
  communities, up to 1 for disjoint blocks; the units of a strong block are candidates to merge (SBM,
  summarization).
- **redundancy** -- the mean over units of the largest correlation of a unit's activations with another
  unit's (a constant unit, which the next layer's bias can absorb, counts as 1): how well one unit is
  already copied by another.

Whether these predict the accuracy a group keeps after compression is a question for data, not for this
module: ``analyses/compressibility.py`` measures it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from workbench.errors import GraphError

#: The measure columns of a :class:`CompressibilityRow`.
MEASURES = (
    "weight_erank",
    "weight_erank_ratio",
    "activation_erank",
    "activation_erank_ratio",
    "modularity",
    "redundancy",
)


def effective_rank(matrix: np.ndarray) -> float:
    """Effective rank (Roy & Vetterli 2007) of ``matrix``: exp of the entropy of its singular values
    normalized to sum one; 0 for a zero matrix. Between 1 and min(shape) otherwise."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise GraphError(f"effective_rank needs a 2-d array, got shape {x.shape}.")
    singular = np.linalg.svd(x, compute_uv=False)
    total = singular.sum()
    if total <= 0 or not np.isfinite(total):
        return 0.0
    p = singular[singular > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def correlation(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, n) correlation of the columns of ``activations`` (samples x n) and a mask of constant columns
    (their rows and columns are 0)."""
    x = np.asarray(activations, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(x, axis=0)
    constant = norms <= 1e-12 * max(float(norms.max(initial=0.0)), 1e-300)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=~constant)
    corr = (x.T @ x) * scale[:, None] * scale[None, :]
    return np.clip(corr, -1.0, 1.0), constant


def redundancy(activations: np.ndarray) -> float:
    """Mean over units of the largest correlation of each unit's activations with another unit's
    (constant units count as 1: exactly removable)."""
    corr, constant = correlation(activations)
    n = corr.shape[0]
    if n < 2:
        return 0.0
    np.fill_diagonal(corr, -np.inf)
    best = corr.max(axis=1)
    best[constant] = 1.0
    return float(best.mean())


def modularity(similarity: np.ndarray, random_state: int = 0) -> float:
    """Modularity of the Louvain partition of the weighted graph ``|similarity|`` (diagonal ignored):
    0 without community structure, towards 1 for disjoint blocks."""
    import networkx as nx

    weights = np.abs(np.asarray(similarity, dtype=np.float64))
    np.fill_diagonal(weights, 0.0)
    if weights.sum() <= 0:
        return 0.0
    graph = nx.from_numpy_array(weights)
    communities = nx.community.louvain_communities(graph, weight="weight", seed=random_state)
    labels = np.empty(len(weights), dtype=np.int64)
    for label, members in enumerate(communities):
        labels[list(members)] = label
    return partition_modularity(weights, labels)


def partition_modularity(weights: np.ndarray, labels: np.ndarray) -> float:
    """Newman's modularity ``Q = sum_c (W_cc / W - (d_c / W)^2)`` of the partition ``labels`` of the
    symmetric nonnegative weight matrix ``weights`` (W the total weight, d_c a community's total degree)."""
    weights = np.asarray(weights, dtype=np.float64)
    labels = np.asarray(labels)
    total = weights.sum()
    if total <= 0:
        return 0.0
    degree = weights.sum(axis=1)
    q = 0.0
    for label in np.unique(labels):
        inside = labels == label
        q += weights[np.ix_(inside, inside)].sum() / total - (degree[inside].sum() / total) ** 2
    return float(q)


@dataclass
class CompressibilityRow:
    """The measures of one prunable group (NaN where they need data that were not given)."""

    group: str
    units: int
    weight_erank: float
    weight_erank_ratio: float
    activation_erank: float
    activation_erank_ratio: float
    modularity: float
    redundancy: float
    constant_units: int


@dataclass
class CompressibilityTable:
    """One :class:`CompressibilityRow` per prunable group, in network order."""

    rows: list[CompressibilityRow]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [asdict(row) for row in self.rows]

    def table(self) -> str:
        """A plain-text table."""
        head = (
            f"{'group':<22}{'units':>6}{'w erank':>9}{'ratio':>7}{'a erank':>9}{'ratio':>7}{'modul.':>8}{'redund.':>9}"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(
                f"{r.group:<22}{r.units:>6}{r.weight_erank:>9.1f}{r.weight_erank_ratio:>7.2f}"
                f"{r.activation_erank:>9.1f}{r.activation_erank_ratio:>7.2f}{r.modularity:>8.3f}{r.redundancy:>9.3f}"
            )
        return "\n".join(lines)


def group_measures(view: Any, random_state: int = 0) -> CompressibilityRow:
    """The measures of one :class:`~workbench.unitview.UnitView` (activations used when it has them)."""
    n = int(view.features.shape[0])
    w_rank = effective_rank(view.features)
    acts = view.activations
    if acts is not None:
        a_rank = effective_rank(acts)
        corr, constant = correlation(acts)
        block, redundant, n_constant = modularity(corr, random_state), redundancy(acts), int(constant.sum())
    else:
        from workbench.unitview import similarity_matrix

        a_rank, redundant, n_constant = float("nan"), float("nan"), 0
        block = modularity(similarity_matrix(view.features, "cosine"), random_state)
    return CompressibilityRow(
        view.group, n, w_rank, w_rank / max(n, 1), a_rank, a_rank / max(n, 1), block, redundant, n_constant
    )


def compressibility(
    model: torch.nn.Module,
    data: Any = None,
    *,
    groups: list[str] | None = None,
    example_input: torch.Tensor | None = None,
    max_samples: int = 512,
    random_state: int = 0,
) -> CompressibilityTable:
    """The compressibility measures of every prunable group of ``model`` (or of ``groups``).

    Parameters
    ----------
    data
        Inputs the activations are collected on (anything :meth:`NetworkGraph.unit_view` takes); without
        data only the weight measures are computed (the block structure then from the weights' cosine).
    example_input
        For tracing a model without ``input_shape`` (default: the first inputs of ``data``).
    max_samples
        Samples of ``data`` used for the activations.
    """
    from workbench.datasets.batches import input_batches
    from workbench.graph.network import from_model

    if example_input is None and getattr(model, "input_shape", None) is None:
        if data is None:
            raise GraphError("pass data or example_input: the model has no input_shape to trace it with.")
        example_input = next(input_batches(data, 2))
    graph = from_model(model, example_input)
    names = [g.name for g in graph.prunable_groups()] if groups is None else [graph.group(g).name for g in groups]
    rows = []
    for name in names:
        view = graph.unit_view(name, source="weights", data=data, max_samples=max_samples, random_state=random_state)
        rows.append(group_measures(view, random_state))
    return CompressibilityTable(rows)
