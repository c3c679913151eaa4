"""Whether surgery can cut a group: every layer and every reader of its units has an adapter that slices it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.adapters import adapter_for
from workbench.adapters.base import module_has_parameters
from workbench.selection import block_cells


def cut_problem(
    model: nn.Module,
    group: Any,
    modules: dict[str, nn.Module] | None = None,
    parameters: dict[str, nn.Parameter] | None = None,
    tied: dict[str, str] | None = None,
) -> str | None:
    """Why the units of ``group`` cannot be removed from ``model`` by slicing its layers (None when they can):
    a layer with parameters and no adapter, a layer or reader its adapter cannot cut, a layer or reader whose weights
    are parametrized or computed (:func:`rebuild_problem`), a layer or reader that shares a parameter with another
    module (tied layers: slicing would untie them), blocks of unequal sizes.
    ``modules`` / ``parameters`` / ``tied``: the model's named ones and :func:`tied_parameters`, when the caller
    checks many groups."""
    modules = dict(model.named_modules()) if modules is None else modules
    parameters = dict(model.named_parameters()) if parameters is None else parameters
    tied = tied_parameters(model) if tied is None else tied
    for name in [*group.unit_maps, *(consumer.layer for consumer in group.consumers)]:
        if name in tied:
            role = "layer" if name in group.unit_maps else "consumer"
            return f"its {role} {name!r} {tied[name]} (tied layers; slicing would untie them)"
    for name in group.unit_maps:
        module = modules.get(name)
        if module is None and name in parameters:
            continue  # a parameter used directly in forward
        if module is None:
            return f"its layer {name!r} is not a module of the model"
        problem = rebuild_problem(module)
        if problem:
            return f"its layer {name!r} {problem}"
        adapter = adapter_for(module)
        if adapter is None:
            if module_has_parameters(module):
                return f"its layer {name!r} ({type(module).__name__}) has parameters and no layer adapter"
            continue
        problem = adapter.slice_problem(module, "out")
        if problem:
            return f"its layer {name!r} is {problem}"
    for consumer in group.consumers:
        module = modules.get(consumer.layer)
        adapter = adapter_for(module) if module is not None else None
        if adapter is None or adapter.in_count(module) is None:
            return (
                f"its consumer {consumer.layer!r} ({type(module).__name__}) has no layer adapter that cuts its inputs"
            )
        problem = rebuild_problem(module) or adapter.slice_problem(module, "in")
        if problem:
            return f"its consumer {consumer.layer!r} {'' if problem.startswith('has ') else 'is '}{problem}"
    cells = block_cells(group.n_units, group.blocks)
    if len(set(np.unique(cells[cells >= 0], return_counts=True)[1].tolist())) > 1:
        return "its grouped layers split its units into blocks of different sizes"
    return None


def rebuild_problem(module: nn.Module) -> str | None:
    """Why surgery cannot slice ``module``'s weights as plain tensors (None when it can), from "has ...": a
    parametrization (``torch.nn.utils.parametrizations.weight_norm``, ``spectral_norm``, a quantizer...; not a
    pruning mask, which surgery lifts and puts back), or a weight computed from other parameters before each
    call (the older ``torch.nn.utils.weight_norm`` and ``spectral_norm`` hooks)."""
    if parametrize.is_parametrized(module):
        kinds = [
            type(p).__name__
            for chain in module.parametrizations.values()
            for p in chain
            if getattr(p, "restorable_name", None) != "mask"
        ]
        if kinds:
            return (
                f"has parametrized weights ({', '.join(kinds)}): surgery rebuilds plain layers; remove the "
                "parametrization first (torch.nn.utils.parametrize.remove_parametrizations)"
            )
        return None
    weight = module.__dict__.get("weight")  # a plain attribute: neither a parameter nor a buffer
    if isinstance(weight, torch.Tensor) and "weight" not in module._parameters and "weight" not in module._buffers:
        names = [name for name, _ in module.named_parameters(recurse=False) if name.startswith("weight")]
        sources = ", ".join(names) or "other tensors"
        return (
            f"has a weight computed from {sources} before each call (torch.nn.utils.weight_norm or spectral_norm): "
            "surgery rebuilds plain layers; remove it first (torch.nn.utils.remove_weight_norm / "
            "remove_spectral_norm)"
        )
    return None


def tied_parameters(model: nn.Module) -> dict[str, str]:
    """Module name -> which of its parameters is the same ``Parameter`` as another module's, for every module
    that shares one (tied layers, ``b.weight = a.weight``); a module called twice shares nothing."""
    users: dict[int, list[str]] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            users.setdefault(id(param), []).append(f"{module_name}.{param_name}" if module_name else param_name)
    tied: dict[str, str] = {}
    for names in users.values():
        for name in names if len(names) > 1 else ():
            module_name, _, param_name = name.rpartition(".")
            others = ", ".join(repr(other) for other in names if other != name)
            tied.setdefault(module_name, f"shares its {param_name} with {others}")
    return tied
