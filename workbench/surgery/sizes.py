"""Predicted sizes of a pruned model: parameters and multiply-adds after a plan, from the graph alone.

The prediction reads layer shapes, the units each group keeps and the input columns each consumer keeps
from the :class:`~workbench.graph.NetworkGraph`; it never builds the smaller model, so comparing it with
the counts of :func:`workbench.surgery.apply`'s result checks the surgery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.adapters import adapter_for


@dataclass(frozen=True)
class PredictedSizes:
    """Predicted size of a model rebuilt from a plan (multiply-adds for one input sample)."""

    params: int
    macs: int


def _kept_outputs(graph: Any, plan: Any) -> dict[str, int]:
    kept: dict[str, int] = {}
    for name, selection in plan.items():
        group = graph.group(name)
        keep = np.zeros(group.n_units, dtype=bool)
        keep[np.asarray(selection.keep)] = True
        for layer, unit_map in group.unit_maps.items():
            kept[layer] = int(np.sum(keep[np.asarray(unit_map)]))
    return kept


def _dropped_inputs(graph: Any, plan: Any) -> dict[str, int]:
    dropped: dict[str, int] = {}
    for name, selection in plan.items():
        group = graph.group(name)
        drop = np.ones(group.n_units, dtype=bool)
        drop[np.asarray(selection.keep)] = False
        for consumer in group.consumers:
            index = np.asarray(consumer.index)
            fed = index >= 0
            dropped[consumer.layer] = dropped.get(consumer.layer, 0) + int(np.sum(drop[index[fed]]))
    return dropped


def predict_sizes(graph: Any, plan: Any) -> PredictedSizes:
    """Parameter count and per-sample multiply-adds of ``graph``'s model after ``plan`` (dropped units removed).

    Not the model's outputs (that is :func:`workbench.train.predict`): the counts the rebuilt model should
    have, read from layer shapes and the plan without building it.
    """
    kept_out = _kept_outputs(graph, plan)
    dropped_in = _dropped_inputs(graph, plan)
    params = macs = 0
    counted: set[int] = set()
    for name, layer in graph.layers.items():
        if not layer.parametric:
            continue
        if layer.kind == "parameter":  # used directly in forward: its slices along the units it keeps
            kept = kept_out.get(name, layer.n_units)
            params += math.prod(layer.weight_shape) // layer.n_units * kept
            continue
        module = graph.module_of(name)
        if id(module) in counted:
            continue
        counted.add(id(module))
        adapter = adapter_for(module)
        if adapter is None:  # opaque: counted whole
            params += sum(p.numel() for p in module.parameters(recurse=False))
            continue
        n_out = kept_out.get(name, adapter.out_count(module) or 0)
        n_in = (adapter.in_count(module) or 0) - dropped_in.get(name, 0)
        layer_params, layer_macs = adapter.count(module, layer.output_shape, n_out, n_in)
        params += layer_params
        macs += layer_macs
    return PredictedSizes(params=int(params), macs=int(macs))
