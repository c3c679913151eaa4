"""REPAIR (Jordan et al., ICLR 2023): after a rebuild, give every kept unit back the statistics it had.

Merging or dropping units shifts the mean and shrinks or inflates the variance of what the kept units
compute, and the shift compounds layer after layer ("variance collapse"). REPAIR measures, on a few batches,
each kept unit's mean and standard deviation at the output of its group's last per-unit affine layer (the
BatchNorm when there is one, else the producing layer) in the original network and in the rebuilt one, and
corrects that layer so that the rebuilt unit has the original's statistics again::

    y' = (y - mean_rebuilt) * std_original / std_rebuilt + mean_original

folded into the layer's weights and bias (a BatchNorm's scale and shift). Groups are repaired in network
order, each measured after the ones before it were corrected.

:func:`data_free_repair` is the data-free variant of Model Folding (Wang et al., ICLR 2025; their Fold-AR):
averaging a cluster of units shrinks the variance of what the merged unit computes, and a BatchNorm after it,
still holding the members' variances, then shrinks its output further ("variance collapse"). The merged
unit's variance is estimated from the weights alone, taking the correlation of two members' pre-activations
to be the cosine of their incoming weights (the correlation they have when the layer's inputs are white:
uncorrelated, of equal variance, any mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class VarianceRepair:
    """Corrections of averaged clusters, computed from the units before they are averaged
    (:func:`data_free_repair`) and written after (:meth:`apply`).

    ``variances``: (BatchNorm ``running_var``, channel, merged variance); ``scales``: (weight, row, factor).
    """

    variances: list[tuple[torch.Tensor, int, float]] = field(default_factory=list)
    scales: list[tuple[torch.Tensor, int, float]] = field(default_factory=list)

    def apply(self) -> int:
        """Write the corrections into the (averaged) layers; returns how many units were corrected."""
        with torch.no_grad():
            for running_var, channel, value in self.variances:
                running_var[channel] = value
            for weight, row, factor in self.scales:
                weight[row] *= factor
        return len(self.variances) + len(self.scales)


def _cosines(rows: np.ndarray) -> np.ndarray:
    """Cosine similarities of ``rows``; two all-zero rows are alike (1), a zero row and another are not (0)."""
    norms = np.linalg.norm(rows, axis=1)
    unit = np.divide(rows, norms[:, None], out=np.zeros_like(rows), where=norms[:, None] > 0)
    cosines = unit @ unit.T
    zero = norms == 0
    cosines[np.outer(zero, zero)] = 1.0
    return cosines


def data_free_repair(
    producers: list[tuple[nn.Module, np.ndarray]], clusters: dict[int, np.ndarray], n_units: int
) -> VarianceRepair:
    """The data-free repair of the clusters a fold is about to average (Model Folding's Fold-AR, as done here).

    Call it before the cluster's parameters are averaged and :meth:`VarianceRepair.apply` after. For every
    layer with weights among ``producers`` ((module, channel of each unit) in network order, as
    :func:`workbench.surgery.slicing.graph_producers` lists them), and every cluster (representative unit ->
    members) of two or more units, with ``w_i`` the members' weight rows and ``rho_ij = cos(w_i, w_j)``:

    - followed by a BatchNorm: the merged channel's running variance is set to the variance of the averaged
      pre-activation ``mean_i(w_i) . x``, ``(1/N^2) sum_ij s_i s_j rho_ij`` with ``s_i^2`` the members' running
      variances (their running means are averaged, which is exact), instead of the mean of ``s_i^2`` that
      averaging leaves; the BatchNorm's output then keeps unit variance before its (averaged) scale;
    - without one: the merged unit's weight row is scaled by ``mean_i |w_i| / |mean_i w_i|`` (bias unchanged),
      so that its standard deviation is the mean of the members' and its mean the mean of theirs, REPAIR's
      targets (Jordan et al. 2023).

    Exact, in expectation over the inputs, when the layer's inputs are white (uncorrelated, equal variances;
    for the unit without BatchNorm also zero-mean) and the running statistics are those of those inputs. A
    cluster of identical units (or of all-zero units) is left as it is, so folding stays exact for them. A
    BatchNorm that follows no layer with weights in the group (one on a residual stream) is left alone; a
    depthwise convolution's kernels are treated as rows of the same input, which holds when the members'
    input channels are alike.
    """
    layers: list[list[Any]] = []  # [weight layer, its channels, following BatchNorm, its channels]
    for module, channels in producers:
        adapter = adapter_for(module)
        if adapter is None or len(channels) != n_units:
            continue
        if adapter.normalizer(module) is not None:
            if layers and layers[-1][2] is None:
                layers[-1][2:] = [module, np.asarray(channels)]
        elif adapter.weight(module) is not None:
            layers.append([module, np.asarray(channels), None, None])
    found = VarianceRepair()
    for module, channels, norm, norm_channels in layers:
        weight = adapter_for(module).weight(module).detach()  # a view: edits reach the module
        rows = weight[torch.as_tensor(channels, device=weight.device)].reshape(n_units, -1).double().cpu().numpy()
        for kept, members in clusters.items():
            if len(members) < 2:
                continue
            alike = bool((rows[members] == rows[members][0]).all())
            cosines = np.ones((len(members), len(members))) if alike else _cosines(rows[members])
            if norm is not None:
                sigma = norm.running_var.detach()[torch.as_tensor(norm_channels[members])].double().clamp_min(0)
                sigma = sigma.sqrt().cpu().numpy()
                merged = float(sigma @ cosines @ sigma) / len(members) ** 2
                found.variances.append((norm.running_var, int(norm_channels[kept]), merged))
                continue
            mean_norm = float(np.linalg.norm(rows[members].mean(axis=0)))
            if mean_norm > 0:
                factor = float(np.linalg.norm(rows[members], axis=1).mean()) / mean_norm
                if abs(factor - 1.0) > 1e-12:
                    found.scales.append((weight, int(channels[kept]), factor))
    return found


__all__ = ["VarianceRepair", "data_free_repair", "repair"]
