"""Fusion of dropped units into kept ones, done before graph slicing removes them.

:func:`merge_columns` and :func:`refit_consumers` edit the (copied) model in place, in the original index
space of the group; they read the group's layers as :mod:`workbench.surgery.slicing` lists them
(``graph_producers``: producing layers and the channel of each unit; ``graph_consumers``: each consumer
and the input columns of each unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.datasets.batches import input_batches
from workbench.utils import check_random_state

_BN = nn.modules.batchnorm._BatchNorm
_CONV = nn.modules.conv._ConvNd


def fold_incoming(producers: list[tuple[nn.Module, np.ndarray]], n_units: int, per_block: bool = False) -> np.ndarray:
    """Per-unit incoming weights and bias with BatchNorm folded in, (n_units, d), from (module, channel of
    each unit) pairs.

    Rows of every Linear / convolution that produces the group's units are concatenated (depthwise kernels
    included); BatchNorm scales multiply the rows and shift the bias. Modules that do not carry every unit (``len(idxs) != n_units``) are skipped. With ``per_block`` the
    pairs are in network order and each BatchNorm is folded into the Linear / convolution just before it
    only (right for residual groups, whose many BatchNorms would otherwise compound); by default every
    BatchNorm scales all rows.
    """
    blocks: list[list[np.ndarray]] = []  # [rows, bias, scale, shift] per producer
    scale, shift = np.ones(n_units), np.zeros(n_units)
    for module, idxs in producers:
        idxs = np.asarray(idxs)
        if len(idxs) != n_units:
            continue
        if isinstance(module, (nn.Linear, _CONV)):
            weight = module.weight.detach()
            if isinstance(module, _CONV) and module.transposed:
                weight = weight.transpose(0, 1)
            bias = module.bias.detach()[idxs].double().numpy() if module.bias is not None else np.zeros(n_units)
            blocks.append(
                [weight[idxs].reshape(len(idxs), -1).double().numpy(), bias, np.ones(n_units), np.zeros(n_units)]
            )
        elif isinstance(module, _BN) and module.running_var is not None:
            gamma = module.weight.detach()[idxs].double().numpy() if module.weight is not None else np.ones(n_units)
            beta = module.bias.detach()[idxs].double().numpy() if module.bias is not None else np.zeros(n_units)
            std = np.sqrt(module.running_var.detach()[idxs].double().numpy() + module.eps)
            mean = module.running_mean.detach()[idxs].double().numpy()
            target = blocks[-1] if per_block and blocks else None
            if target is None:
                shift, scale = shift * gamma / std + beta - gamma * mean / std, scale * gamma / std
            else:
                target[3], target[2] = target[3] * gamma / std + beta - gamma * mean / std, target[2] * gamma / std
    if not blocks:
        return np.concatenate([np.zeros((n_units, 0)), shift[:, None]], axis=1)
    weights = np.concatenate([rows * s[:, None] for rows, _, s, _ in blocks], axis=1)
    bias = np.sum([s * b + t for _, b, s, t in blocks], axis=0)
    return np.concatenate([weights * scale[:, None], (scale * bias + shift)[:, None]], axis=1)


def merge_columns(readers: list[tuple[nn.Module, dict[int, list[int]]]], incoming: np.ndarray, selection: Any) -> None:
    """Add each dropped unit's consumer columns, scaled by its incoming-norm ratio, to its kept unit's.

    Neuron merging (Kim et al. 2020). ``readers`` are (consumer, {unit: input indices}) pairs (for a
    transposed convolution the indices address dimension 0 of its weight, otherwise dimension 1);
    ``incoming`` is the (n_units, d) matrix of :func:`fold_incoming`.
    """
    n = selection.n_units
    norms = np.linalg.norm(incoming, axis=1)
    assign = np.asarray(selection.assign)
    dropped = [d for d in range(n) if int(assign[d]) != d]
    for module, columns in readers:
        weight = module.weight.data
        if isinstance(module, _CONV) and module.transposed:
            weight = weight.transpose(0, 1)
        for d in dropped:
            k = int(assign[d])
            if norms[k] == 0.0 or not columns.get(d) or len(columns[d]) != len(columns.get(k, ())):
                continue
            weight[:, columns[k]] += float(norms[d] / norms[k]) * weight[:, columns[d]]


@dataclass
class FusionContext:
    """What ``lsq`` needs: the original model, the model being rebuilt, and a data sample.

    A consumer's design matrix has a row per sample (per sampled position for a convolution); batches stop
    once ``max_rows`` rows are read, so that a convolution (64 positions a sample) runs the two models on
    a few batches, not on all ``max_samples`` samples, for unknowns counted in hundreds.
    """

    reference: nn.Module
    pruned: nn.Module
    data: Any
    max_samples: int = 1024
    max_positions: int = 64
    ridge: float = 1e-6
    random_state: int = 0
    max_rows: int = 16384


def _transposed(module: nn.Module) -> bool:
    return isinstance(module, _CONV) and module.transposed


def _upsampled(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The input of the ordinary stride-1 convolution that equals transposed convolution ``module``.

    ``conv_transpose(x, w)`` is ``conv(x_up, w')`` where ``x_up`` has ``stride - 1`` zeros between input
    pixels and is padded by ``dilation * (kernel - 1) - padding`` (plus ``output_padding`` at the end),
    and ``w'`` is ``w`` with input and output swapped and the kernel flipped (:func:`_equivalent_weight`).
    """
    n, c, *sides = inputs.shape
    stride, dilation, padding = module.stride, module.dilation, module.padding
    up = inputs.new_zeros(n, c, *[(side - 1) * s + 1 for side, s in zip(sides, stride)])
    up[(slice(None), slice(None), *[slice(None, None, s) for s in stride])] = inputs
    pads: list[int] = []
    for d, k, p, extra in reversed(list(zip(dilation, module.kernel_size, padding, module.output_padding))):
        pads += [d * (k - 1) - p, d * (k - 1) - p + extra]
    return F.pad(up, pads)


def _equivalent_weight(module: nn.Module) -> torch.Tensor:
    """(out, in, *kernel) weight of the ordinary convolution that a consumer's input columns feed:
    the weight itself, or for a transposed convolution its swapped and flipped kernel."""
    weight = module.weight.data
    if _transposed(module):
        return weight.transpose(0, 1).flip(tuple(range(2, weight.dim())))
    return weight


def _rows(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor, positions: np.ndarray | None):
    """(design rows, target rows without bias) for one batch of a consumer."""
    target = output - module.bias.view(1, -1, *([1] * (output.dim() - 2))) if module.bias is not None else output
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1]), target.reshape(-1, target.shape[-1])
    if _transposed(module):
        cols = F.unfold(_upsampled(module, inputs), module.kernel_size, dilation=module.dilation)
        target = target.flatten(2)
        if positions is not None:
            cols, target = cols[:, :, positions], target[:, :, positions]
        return cols.transpose(1, 2).reshape(-1, cols.shape[1]), target.transpose(1, 2).reshape(-1, target.shape[1])
    if inputs.dim() == 3:  # Conv1d: treat as 2-d with height 1
        inputs, target = inputs.unsqueeze(2), target.unsqueeze(2)
        kernel, dilation, padding, stride = (
            (1, module.kernel_size[0]),
            (1, module.dilation[0]),
            (0, module.padding[0]),
            (1, module.stride[0]),
        )
    else:
        kernel, dilation, padding, stride = module.kernel_size, module.dilation, module.padding, module.stride
    cols = F.unfold(inputs, kernel, dilation=dilation, padding=padding, stride=stride)  # N, C*k, L
    target = target.flatten(2)  # N, O, L
    if positions is not None:
        cols, target = cols[:, :, positions], target[:, :, positions]
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]), target.transpose(1, 2).reshape(-1, target.shape[1])


def _collect(context: FusionContext, module: nn.Module, reference_module: nn.Module, out_index: np.ndarray):
    """Consumer inputs in the rebuilt model and consumer outputs in the original, on the same data.

    ``out_index`` maps the consumer's present output units to the original ones (earlier groups may
    already have removed some of its outputs).
    """
    captured: dict[str, list[torch.Tensor]] = {"x": [], "y": []}
    rng = check_random_state(context.random_state)

    def keep_input(mod, inputs, output):
        captured["x"].append(inputs[0].detach())

    def keep_output(mod, inputs, output):
        captured["y"].append(output.detach())

    handles = [module.register_forward_hook(keep_input), reference_module.register_forward_hook(keep_output)]
    design, targets = [], []
    try:
        with torch.no_grad():
            for x in input_batches(context.data, context.max_samples, name="the data for lsq fusion"):
                captured["x"].clear()
                captured["y"].clear()
                context.pruned(x)
                context.reference(x)
                inputs, output = captured["x"][0], captured["y"][0][:, torch.as_tensor(out_index)]
                positions = None
                if isinstance(module, _CONV):
                    n_pos = int(np.prod(output.shape[2:]))
                    if n_pos > context.max_positions:
                        positions = torch.as_tensor(rng.choice(n_pos, context.max_positions, replace=False))
                rows, target = _rows(module, inputs, output, positions)
                design.append(rows.double())
                targets.append(target.double())
                if sum(len(block) for block in design) >= context.max_rows:
                    break
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(design), torch.cat(targets)


def refit_consumers(
    readers: list[tuple[nn.Module, dict[int, list[int]]]],
    selection: Any,
    context: FusionContext,
    out_index: dict[str, np.ndarray],
) -> None:
    """Re-fit every consumer's weights on the kept units by ridge least squares (Mariet & Sra 2016).

    ``readers`` are (consumer, {unit: input indices}) pairs, as for :func:`merge_columns`; ``out_index``
    maps layer names to the original indices of their present output units. A transposed convolution
    (2-d, ungrouped) is fitted as the ordinary convolution it equals on its zero-upsampled input; grouped
    transposed convolutions are left as they are (their inputs are simply dropped).
    """
    names = {module: name for name, module in context.pruned.named_modules()}
    reference_modules = dict(context.reference.named_modules())
    dropped = {int(d) for d in range(selection.n_units)} - {int(k) for k in selection.keep}
    for module, columns in readers:
        if _transposed(module) and (module.groups != 1 or module.weight.dim() != 4):
            continue
        name = names[module]
        equivalent = _equivalent_weight(module)
        index = out_index.get(name, np.arange(equivalent.shape[0]))
        design, target = _collect(context, module, reference_modules[name], index)
        dropped_cols = {c for unit in dropped for c in columns.get(unit, ())}
        in_features = equivalent.shape[1]
        kept_cols = [c for c in range(in_features) if c not in dropped_cols]
        span = 1 if isinstance(module, nn.Linear) else int(np.prod(module.kernel_size))
        design_cols = [c * span + j for c in kept_cols for j in range(span)]
        x = design[:, design_cols]
        if module.bias is not None:
            x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        gram = x.T @ x
        lam = context.ridge * float(torch.diagonal(gram).mean().clamp_min(1e-12))
        solution = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=gram.dtype), x.T @ target)
        weight = equivalent.contiguous()
        flat = weight.reshape(weight.shape[0], -1)
        new = solution[: len(design_cols)].T.to(weight.dtype)
        flat[:, design_cols] = new
        # the dropped columns are removed afterwards; zero them now so that later consumers of the group
        # fed through this one (a residual stream) are fitted on the inputs the rebuilt network will have
        flat[:, [c * span + j for c in sorted(dropped_cols) for j in range(span)]] = 0.0
        fitted = flat.reshape(weight.shape)
        if _transposed(module):
            fitted = fitted.flip(tuple(range(2, fitted.dim()))).transpose(0, 1).contiguous()
        module.weight.data = fitted
        if module.bias is not None:
            module.bias.data += solution[len(design_cols)].to(module.bias.dtype)
