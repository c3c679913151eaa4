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
from torch import nn

from workbench.surgery.slicing import is_depthwise

_CONV = nn.modules.conv._ConvNd
_BN = nn.modules.batchnorm._BatchNorm


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
        module = graph.module_of(name)
        if id(module) in counted:
            continue
        counted.add(id(module))
        spatial = math.prod(layer.output_shape[2:]) if layer.output_shape and len(layer.output_shape) > 2 else 1
        if isinstance(module, nn.Linear):
            out_f = kept_out.get(name, module.out_features)
            in_f = module.in_features - dropped_in.get(name, 0)
            params += out_f * in_f + (out_f if module.bias is not None else 0)
            rows = math.prod(layer.output_shape[1:-1]) if layer.output_shape and len(layer.output_shape) > 2 else 1
            macs += out_f * in_f * rows
        elif isinstance(module, _CONV):
            kernel = math.prod(module.kernel_size)
            out_c = kept_out.get(name, module.out_channels)
            if is_depthwise(module):
                in_per_group = 1
            else:
                in_per_group = (module.in_channels - dropped_in.get(name, 0)) // module.groups
            params += out_c * in_per_group * kernel + (out_c if module.bias is not None else 0)
            if module.transposed:  # every input position is scattered through the whole kernel
                in_spatial = spatial // math.prod(module.stride)
                macs += out_c * in_per_group * kernel * in_spatial
            else:
                macs += out_c * in_per_group * kernel * spatial
        else:
            units = kept_out.get(name)
            for parameter in module.parameters(recurse=False):
                per_unit = parameter.numel() // max(1, layer.n_units or 1)
                params += parameter.numel() if units is None or parameter.numel() == 1 else units * per_unit
    return PredictedSizes(params=int(params), macs=int(macs))
