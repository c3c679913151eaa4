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
from torch import nn

from workbench.adapters import adapter_for
from workbench.datasets.batches import input_batches
from workbench.errors import SurgeryError
from workbench.utils import check_random_state, to_model


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def _last(adapter: Any, module: nn.Module) -> bool:
    """Whether the module's units run along the last dimension (Linear) rather than dimension 1."""
    return adapter.unit_dim(module, 3) == 2


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
        adapter = adapter_for(module)
        if adapter is None:
            continue
        normalizer = adapter.normalizer(module)
        weight = adapter.weight(module)
        if normalizer is not None:
            gain, offset = (_numpy(t[torch.as_tensor(idxs, device=t.device)]) for t in normalizer)
            target = blocks[-1] if per_block and blocks else None
            if target is None:
                shift, scale = shift * gain + offset, scale * gain
            else:
                target[3], target[2] = target[3] * gain + offset, target[2] * gain
        elif weight is not None:
            bias = adapter.bias(module)
            bias = _numpy(bias.detach()[idxs]) if bias is not None else np.zeros(n_units)
            rows = _numpy(weight.detach()[idxs].reshape(len(idxs), -1))
            blocks.append([rows, bias, np.ones(n_units), np.zeros(n_units)])
    if not blocks:
        return np.concatenate([np.zeros((n_units, 0)), shift[:, None]], axis=1)
    weights = np.concatenate([rows * s[:, None] for rows, _, s, _ in blocks], axis=1)
    bias = np.sum([s * b + t for _, b, s, t in blocks], axis=0)
    return np.concatenate([weights * scale[:, None], (scale * bias + shift)[:, None]], axis=1)


def merge_columns(
    readers: list[tuple[nn.Module, dict[int, list[int]]]],
    incoming: np.ndarray,
    selection: Any,
    targets: np.ndarray | None = None,
) -> None:
    """Add each dropped unit's consumer columns, scaled by its incoming-norm ratio, to its target's.

    Neuron merging (Kim et al. 2020). ``readers`` are (consumer, {unit: input indices}) pairs (for a
    transposed convolution the indices address dimension 0 of its weight, otherwise dimension 1);
    ``incoming`` is the (n_units, d) matrix of :func:`fold_incoming`. ``targets`` gives each unit's kept
    target (-1: pruned only); default the selection's ``assign``.
    """
    n = selection.n_units
    norms = np.linalg.norm(incoming, axis=1)
    assign = np.asarray(selection.assign if targets is None else targets)
    dropped = [d for d in range(n) if int(assign[d]) != d and int(assign[d]) >= 0]
    for module, columns in readers:
        weight = adapter_for(module).weight(module).detach()  # a view: edits reach the module
        for d in dropped:
            k = int(assign[d])
            if norms[k] == 0.0 or not columns.get(d) or len(columns[d]) != len(columns.get(k, ())):
                continue
            weight[:, columns[k]] += float(norms[d] / norms[k]) * weight[:, columns[d]]


def most_similar(incoming: np.ndarray, selection: Any, threshold: float = 0.0) -> np.ndarray:
    """Neuron Merging's targets (Kim et al. 2020): each dropped unit goes to the kept unit whose incoming weights
    and bias (BatchNorm folded, :func:`fold_incoming`) are the most cosine-similar to its own, when that
    similarity is at least ``threshold``; otherwise it is only pruned (-1). Kept units map to themselves."""
    keep = np.asarray(selection.keep)
    norms = np.linalg.norm(incoming, axis=1, keepdims=True)
    unit = np.divide(incoming, norms, out=np.zeros_like(incoming), where=norms > 0)
    targets = np.arange(selection.n_units)
    dropped = np.setdiff1d(targets, keep)
    if dropped.size:
        similarity = unit[dropped] @ unit[keep].T
        best = similarity.argmax(axis=1)
        targets[dropped] = np.where(similarity[np.arange(len(dropped)), best] >= threshold, keep[best], -1)
    return targets


@dataclass
class FusionContext:
    """What ``lsq`` needs: the original model, the model being rebuilt, and a data sample.

    ``masked`` names the layers that carry pruning masks: their refit keeps the pruned weights at zero. A
    consumer's design matrix has a row per sample (per sampled position for a convolution); batches stop
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
    masked: frozenset[str] = frozenset()


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

    adapter = adapter_for(module)
    handles = [module.register_forward_hook(keep_input), reference_module.register_forward_hook(keep_output)]
    design, targets = [], []
    try:
        with torch.no_grad():
            for x in input_batches(context.data, context.max_samples, name="the data for lsq fusion"):
                x = to_model(x, context.reference)
                captured["x"].clear()
                captured["y"].clear()
                context.pruned(x)
                context.reference(x)
                inputs, output = captured["x"][0], captured["y"][0]
                dim = output.dim() - 1 if _last(adapter, module) else 1
                output = output.index_select(dim, torch.as_tensor(out_index, device=output.device))
                bias = adapter.bias(module)
                if bias is not None:  # the targets are what the weights must produce
                    shape = [1] * output.dim()
                    shape[dim] = -1
                    output = output - bias.view(shape)
                rows, target = adapter.design_rows(module, inputs, output, context.max_positions, rng)
                design.append(rows.double())
                targets.append(target.double())
                if sum(len(block) for block in design) >= context.max_rows:
                    break
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(design), torch.cat(targets)


def _solve(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``gram^-1 rhs``; for a singular ``gram`` (a kept unit that is always zero, with no ridge) the least-norm
    solution, which gives such a unit zero weight."""
    try:
        return torch.linalg.solve(gram, rhs)
    except torch.linalg.LinAlgError:
        return torch.linalg.pinv(gram, hermitian=True) @ rhs


def _ridge(
    x: torch.Tensor, target: torch.Tensor, ridge: float, allowed: torch.Tensor | None, bias: bool
) -> torch.Tensor:
    """Ridge solution (columns of ``x``, outputs) of ``x @ w ~ target``, the ridge relative to the mean diagonal
    of the Gram matrix. With ``allowed`` (outputs, weight columns), each output is fitted on its allowed
    columns only (a pruning mask) and its other weights stay zero; a bias column (the last) is always free."""
    gram, rhs = x.T @ x, x.T @ target
    lam = ridge * float(torch.diagonal(gram).mean().clamp_min(1e-12))
    regular = gram + lam * torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    if allowed is None:
        return _solve(regular, rhs)
    solution = torch.zeros_like(rhs)
    free = torch.ones(1, dtype=torch.bool, device=allowed.device) if bias else allowed.new_zeros(0)
    for o in range(rhs.shape[1]):
        idx = torch.cat([allowed[o], free]).nonzero().flatten()
        if len(idx):
            solution[idx, o] = _solve(regular[idx][:, idx], rhs[idx, o])
    return solution


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
        adapter = adapter_for(module)
        if not adapter.refittable(module):
            continue
        name = names[module]
        equivalent = adapter.fit_weight(module)
        index = out_index.get(name, np.arange(equivalent.shape[0]))
        design, target = _collect(context, module, reference_modules[name], index)
        dropped_cols = {c for unit in dropped for c in columns.get(unit, ())}
        in_features = equivalent.shape[1]
        kept_cols = [c for c in range(in_features) if c not in dropped_cols]
        span = adapter.kernel_span(module)
        design_cols = [c * span + j for c in kept_cols for j in range(span)]
        x = design[:, design_cols]
        if adapter.bias(module) is not None:
            x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)
        if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(target).all())):
            raise SurgeryError(
                f"lsq fusion of {name!r}: the data give NaN or infinite activations, so no least-squares fit "
                "exists; check the data (and the model's weights) for non-finite values, or use fuse='drop'."
            )
        weight = equivalent.contiguous()
        flat = weight.reshape(weight.shape[0], -1)
        allowed = (flat[:, design_cols] != 0) if name in context.masked else None
        solution = _ridge(x, target, context.ridge, allowed, adapter.bias(module) is not None)
        new = solution[: len(design_cols)].T.to(weight.dtype)
        flat[:, design_cols] = new
        # the dropped columns are removed afterwards; zero them now so that later consumers of the group
        # fed through this one (a residual stream) are fitted on the inputs the rebuilt network will have
        flat[:, [c * span + j for c in sorted(dropped_cols) for j in range(span)]] = 0.0
        adapter.set_fit_weight(module, flat.reshape(weight.shape))
        if adapter.bias(module) is not None:
            module.bias.data += solution[len(design_cols)].to(module.bias.dtype)
