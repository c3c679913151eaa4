"""REPAIR (Jordan et al., ICLR 2023): after a rebuild, give every kept unit back the statistics it had.

Merging or dropping units shifts the mean and shrinks or inflates the variance of what the kept units
compute, and the shift compounds layer after layer ("variance collapse"). REPAIR measures, on a few batches,
each kept unit's mean and standard deviation at the output of its group's last per-unit affine layer (the
BatchNorm when there is one, else the producing layer) in the original network and in the rebuilt one, and
corrects that layer so that the rebuilt unit has the original's statistics again::

    y' = (y - mean_rebuilt) * std_original / std_rebuilt + mean_original

folded into the layer's weights and bias (a BatchNorm's scale and shift). Groups are repaired in network
order, each measured after the ones before it were corrected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.adapters import adapter_for
from workbench.datasets.batches import input_batches
from workbench.utils import to_model


def _affine_layer(graph: Any, group: Any) -> str | None:
    """The last layer of ``group`` (network order) that carries every unit once and applies a per-unit affine
    map that can be rescaled: a BatchNorm, or a producer with a bias."""
    found = None
    modules = dict(graph.model.named_modules())
    for name in group.layers:
        unit_map = np.asarray(group.unit_maps[name])
        if len(unit_map) != group.n_units or len(np.unique(unit_map)) != group.n_units:
            continue
        module = modules.get(name)
        adapter = adapter_for(module) if module is not None else None
        if adapter is None:
            continue
        if adapter.normalizer(module) is not None or (
            adapter.weight(module) is not None and adapter.bias(module) is not None
        ):
            found = name
    return found


def _channel_stats(model: nn.Module, layer: str, data: Any, max_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of ``layer``'s output over the data (batch and positions)."""
    module = model.get_submodule(layer)
    total, square, count = None, None, 0

    def keep(mod: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total, square, count
        values = output.detach().double()
        values = values.movedim(1, -1).reshape(-1, values.shape[1]) if values.dim() > 2 else values
        total = values.sum(0) if total is None else total + values.sum(0)
        square = (values * values).sum(0) if square is None else square + (values * values).sum(0)
        count += values.shape[0]

    handle = module.register_forward_hook(keep)
    try:
        with torch.no_grad():
            for x in input_batches(data, max_samples, name="the data for repair"):
                model(to_model(x, model))
    finally:
        handle.remove()
    mean = total / count
    return mean, (square / count - mean * mean).clamp_min(0.0).sqrt()


def _rescale(module: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Fold ``y -> scale * y + shift`` (per output channel) into ``module``'s parameters."""
    adapter = adapter_for(module)
    with torch.no_grad():
        if adapter.normalizer(module) is not None:  # BatchNorm: its affine scale and shift
            n = module.num_features
            if module.weight is None:
                module.weight = nn.Parameter(torch.ones(n, device=scale.device))
                module.bias = nn.Parameter(torch.zeros(n, device=scale.device))
                module.affine = True
            module.bias.mul_(scale.to(module.bias.dtype)).add_(shift.to(module.bias.dtype))
            module.weight.mul_(scale.to(module.weight.dtype))
            return
        weight = adapter.weight(module).detach()
        weight.mul_(scale.to(weight.dtype).view(-1, *([1] * (weight.dim() - 1))))
        bias = adapter.bias(module)
        bias.mul_(scale.to(bias.dtype)).add_(shift.to(bias.dtype))


def repair(reference: nn.Module, rebuilt: nn.Module, graph: Any, plan: Any, data: Any, max_samples: int = 512) -> int:
    """Rescale ``rebuilt``'s kept units to the statistics they have in ``reference`` (see the module docstring).

    Parameters
    ----------
    reference, rebuilt
        The original network (its graph is ``graph``) and the network :func:`workbench.surgery.apply` made from it
        with ``plan``, both in eval mode.
    data
        A few batches of inputs (a tensor, a Dataset or a DataLoader); ``max_samples`` of them are used.

    Returns
    -------
    int
        How many layers were corrected.
    """
    order = {name: i for i, name in enumerate(graph.layers)}
    repaired = 0
    for name in sorted(plan, key=lambda g: order.get(g, len(order))):
        selection, group = plan[name], graph.group(name)
        if selection.k == group.n_units:
            continue
        layer = _affine_layer(graph, group)
        if layer is None:
            continue
        # the rebuilt layer keeps the original channels of the kept units, in their original order
        channels = np.sort(np.argsort(np.asarray(group.unit_maps[layer]))[selection.keep])
        mean_o, std_o = _channel_stats(reference, layer, data, max_samples)
        mean_r, std_r = _channel_stats(rebuilt, layer, data, max_samples)
        index = torch.as_tensor(channels, device=mean_o.device)
        mean_o, std_o = mean_o[index], std_o[index]
        alive = std_r > 1e-8 * (1.0 + std_o)
        scale = torch.where(alive, std_o / std_r.clamp_min(1e-12), torch.ones_like(std_r))
        shift = mean_o - scale * mean_r
        _rescale(rebuilt.get_submodule(layer), scale, shift)
        repaired += 1
    return repaired


__all__ = ["repair"]
