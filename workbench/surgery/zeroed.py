"""Turn structured sparsity into a physically smaller network (Wen et al. 2016).

Group lasso (``workbench.sparse.GroupLasso``) drives whole filters, channels and neurons to zero, but a
zeroed filter still costs memory and multiply-adds until the network is rebuilt without it. Here every
prunable group of a network is scanned for units that carry nothing:

- *unread*: every consumer weight that reads the unit is zero (a zeroed input channel or column);
- *silent*: its incoming weights and every bias or BatchNorm shift on its way are zero, so it outputs
  zero (depthwise kernels after it only carry its own value);
- *constant*: its incoming weights are zero but a bias is not, so it outputs a constant (or, after a
  padded convolution, nearly one) that the consumers' biases can absorb (least-squares fusion does that;
  plain dropping does not).

:func:`zeroed_plan` collects them into a :class:`~workbench.surgery.Plan`; :func:`shrink_zeroed` applies
it. Dropping unread and silent units computes the same function as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.adapters import adapter_for
from workbench.edits import set_note
from workbench.errors import ConfigError
from workbench.surgery.fusion import fold_incoming
from workbench.surgery.plan import Plan
from workbench.surgery.plan_builder import keep_fixed, unrebuildable_groups
from workbench.surgery.slicing import graph_consumers, graph_producers, is_depthwise


def _outgoing_norms(model: nn.Module, group: Any) -> np.ndarray:
    """L2 norm of every consumer weight that reads each unit of ``group``."""
    squares = np.zeros(group.n_units)
    for module, columns in graph_consumers(model, group):
        weight = adapter_for(module).weight(module).detach().double()
        for unit, cols in columns.items():
            squares[unit] += float(weight[:, cols].pow(2).sum())
    return np.sqrt(squares)


def zeroed_units(model: nn.Module, group: Any, tol: float = 1e-3) -> dict[str, np.ndarray]:
    """Per-unit masks ``unread``, ``silent``, ``constant`` (see the module docstring) and the norms behind them.

    ``tol`` bounds the L2 norm below which a group of weights (or the absolute bias) counts as zero.
    Returns a dict with boolean arrays ``unread``, ``silent``, ``constant`` and float arrays ``incoming``,
    ``outgoing``, ``bias`` (one entry per unit of the group).
    """
    producers = graph_producers(model, group)
    n = group.n_units
    with torch.no_grad():
        # rows that read other units (depthwise kernels only carry a unit's own value further)
        incoming = fold_incoming([p for p in producers if not is_depthwise(p[0])], n, per_block=True)
        # the bias or shift each layer adds on the way; all zero means a unit without input stays zero
        added = np.max([np.abs(fold_incoming([p], n)[:, -1]) for p in producers], axis=0) if producers else np.zeros(n)
        bias = fold_incoming(producers, n, per_block=True)[:, -1]
    in_norm = np.linalg.norm(incoming[:, :-1], axis=1)
    out_norm = _outgoing_norms(model, group)
    unread = out_norm < tol
    quiet = in_norm < tol
    silent = quiet & (added < tol) & ~unread
    constant = quiet & ~silent & ~unread
    return {
        "unread": unread,
        "silent": silent,
        "constant": constant,
        "incoming": in_norm,
        "outgoing": out_norm,
        "bias": bias,
    }


def zeroed_plan(
    model: nn.Module,
    *,
    tol: float = 1e-3,
    constant: bool = False,
    graph: Any = None,
    example_input: torch.Tensor | None = None,
) -> Plan:
    """A Plan dropping the units of every rebuildable group whose weights are zero (see :func:`zeroed_units`).

    Parameters
    ----------
    model
        Any network surgery can rebuild (a zoo model, or any module with ``example_input``).
    tol
        Norm below which weights count as zero (group lasso leaves values near, not at, zero).
    constant
        Also drop *constant* units (zero weights, nonzero bias); apply the plan with ``fuse="lsq"`` so that
        the consumers' biases absorb their output.
    graph, example_input
        The model's :class:`~workbench.graph.NetworkGraph`, or an input to build it with.

    Returns
    -------
    Plan
        One Selection per group that loses units (kept: the others, and the group's fixed units; a group
        never loses all its units); the Plan's ``meta`` counts the units of each kind.
    """
    from workbench.selection import Selection

    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not np.isfinite(tol) or tol < 0:
        raise ConfigError(f"tol must be a finite number >= 0, got {tol!r}; e.g. tol=1e-3.")
    if graph is None:
        from workbench.graph import from_model

        graph = from_model(model, example_input)
    unsupported = unrebuildable_groups(graph)
    selections, counts = {}, {"unread": 0, "silent": 0, "constant": 0}
    for group in graph.prunable_groups():
        if group.name in unsupported:
            continue
        found = zeroed_units(model, group, tol)
        drop = found["unread"] | found["silent"] | (found["constant"] if constant else False)
        drop &= ~np.asarray(group.fixed, dtype=bool)
        if not drop.any():
            continue
        scores = found["incoming"] * found["outgoing"]
        if drop.all():  # keep the unit that carries most
            drop[int(np.argmax(scores))] = False
        keep = np.flatnonzero(~drop)
        assign = np.where(drop, keep[0], np.arange(group.n_units))
        for kind in counts:
            counts[kind] += int((found[kind] & drop).sum())
        selection = Selection(
            group=group.name,
            n_units=group.n_units,
            keep=keep,
            assign=assign,
            scores=scores,
            method="zeroed",
            params={"tol": float(tol), "constant": bool(constant)},
        )
        selections[group.name] = keep_fixed(selection, group)
    return Plan(selections=selections, meta={"selector": "zeroed", "tol": float(tol), "dropped": counts})


def shrink_zeroed(
    model: nn.Module,
    *,
    tol: float = 1e-3,
    constant: bool = False,
    data: Any = None,
    example_input: torch.Tensor | None = None,
    graph: Any = None,
    plan: Plan | None = None,
    **apply_kwargs: Any,
) -> nn.Module:
    """A physically smaller copy of ``model`` without the units its zero weights disconnect.

    Unread and silent units are dropped (the function is unchanged); with ``constant=True`` constant units
    are dropped too and the consumers re-fitted by least squares on ``data`` (their biases absorb the
    constants; exact for Linear consumers and unpadded convolutions). ``plan`` is :func:`zeroed_plan`'s
    result when already computed (with ``graph``, the model's NetworkGraph, both are reused); the plan
    applied is the note ``"plan"`` (``workbench.edits.note``). Other keywords go to :func:`workbench.surgery.apply`.
    """
    from workbench.surgery.apply import apply

    if constant and data is None:
        raise ConfigError(
            "shrink_zeroed(constant=True) re-fits the consumers on data; pass data=... "
            "(a data set or a tensor of inputs), or leave constant units in with constant=False."
        )
    if graph is None:
        from workbench.graph import from_model

        graph = from_model(model, example_input)
    if plan is None:
        plan = zeroed_plan(model, tol=tol, constant=constant, graph=graph)
    if not len(plan):
        raise ConfigError(
            f"no unit of {type(model).__name__} has all its weights below tol={tol}; nothing to "
            "remove. Train with a group-lasso penalty first (workbench.sparse.GroupLasso) or raise tol."
        )
    fuse = "lsq" if constant else "drop"
    small = apply(model, plan, fuse, example_input=example_input, graph=graph, data=data, **apply_kwargs)
    return set_note(small, "plan", plan)
