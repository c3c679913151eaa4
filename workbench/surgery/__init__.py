"""Rebuild networks smaller: plans, drop / merge / least-squares / summarization / folding fusion, and layer
factorization.

- :class:`Plan` -- one Selection per prunable group, JSON-serializable.
- :func:`plan_from` -- a Plan over every prunable group of a NetworkGraph, from a selector.
- :func:`apply` -- a physically smaller copy of a model (the coupled edits are sliced from the graph's
  unit maps, :mod:`workbench.surgery.slicing`).
- :func:`supported_groups` -- which prunable groups :func:`apply` can rebuild (and why not the others);
  :func:`rebuild_methods` -- how each group is rebuilt (graph slicing, or why it cannot be).
- :func:`factorize`, :func:`svd_linear`, :func:`tucker2_conv`, :func:`cp_conv` -- low-rank and tensor
  factorization of layers; :func:`reconstruct` -- global error reconstruction after it.
- :func:`sparse_decompose` -- conv kernels as a channel basis, basis kernels and sparse coefficients
  (Sparse CNNs, Liu et al. 2015).
- :func:`zeroed_plan`, :func:`shrink_zeroed` -- remove the units structured sparsity (group lasso) zeroed.
"""

from __future__ import annotations

from workbench.surgery.apply import FUSE_MODES, apply, rebuild_methods, supported_groups
from workbench.surgery.factorize import cp_conv, factorize, reconstruct, svd_linear, tucker2_conv
from workbench.surgery.plan import Plan
from workbench.surgery.plan_builder import plan_from
from workbench.surgery.sparse_conv import SparseDecomposedConv, sparse_decompose
from workbench.surgery.zeroed import shrink_zeroed, zeroed_plan, zeroed_units

__all__ = [
    "FUSE_MODES",
    "Plan",
    "apply",
    "plan_from",
    "rebuild_methods",
    "supported_groups",
    "factorize",
    "svd_linear",
    "tucker2_conv",
    "cp_conv",
    "reconstruct",
    "sparse_decompose",
    "SparseDecomposedConv",
    "shrink_zeroed",
    "zeroed_plan",
    "zeroed_units",
]
