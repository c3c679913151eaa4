"""Magnitude pruning with retraining (Han et al., "Learning both weights and connections", NIPS 2015)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from workbench.edits import record_edit, set_note
from workbench.errors import CompressionError
from workbench.sparse.layers import maybe_copy, per_layer, resolve_teacher, weight_layers
from workbench.sparse.masks import Masks, get_masks, set_masks


def _check_rate(rate: float, name: str) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise CompressionError(f"pruning rate for layer {name!r} must be a number in [0, 1), got {rate!r}.") from None
    if not 0.0 <= rate < 1.0:
        raise CompressionError(f"pruning rate for layer {name!r} must lie in [0, 1), got {rate}.")
    return rate


def _keep_largest(weight: torch.Tensor, rate: float, previous: torch.Tensor | None) -> torch.Tensor:
    """Mask keeping the ``1 - rate`` largest-magnitude entries (pruned entries of ``previous`` stay pruned)."""
    magnitude = weight.detach().abs().flatten().clone()
    if previous is not None:
        magnitude[~previous.flatten()] = -1.0
    n_prune = int(round(rate * magnitude.numel()))
    mask = torch.ones_like(magnitude, dtype=torch.bool)
    if n_prune > 0:
        order = torch.argsort(magnitude, stable=True)
        mask[order[:n_prune]] = False
    if previous is not None:
        mask &= previous.flatten()
    return mask.view_as(weight)


def magnitude_masks(
    model: nn.Module,
    *,
    rate: float | dict[str, float] | None = None,
    quality: float | dict[str, float] | None = None,
    scope: str = "layer",
    layers: Iterable[str] | None = None,
    previous: Masks | None = None,
) -> Masks:
    """Masks that drop the smallest-magnitude weights.

    Parameters
    ----------
    rate
        Fraction of weights to prune, in [0, 1): one number, or a dict by layer name / kind
        ("conv", "linear", "default"). With ``scope="global"`` one threshold over all layers.
    quality
        Han et al.'s rule instead of a rate: prune ``|w| < quality * std(w of the layer)``.
    scope
        ``"layer"`` (per-layer rate or threshold) or ``"global"`` (one magnitude threshold).
    previous
        Masks from an earlier round; weights they pruned stay pruned and rates count all weights.
    """
    if (rate is None) == (quality is None):
        raise CompressionError(
            "give exactly one of `rate` (fraction to prune) or `quality` (threshold = quality x std)."
        )
    if scope not in ("layer", "global"):
        raise CompressionError(f"scope must be 'layer' or 'global', got {scope!r}.")
    chosen = weight_layers(model, layers, what="magnitude pruning")
    prev = {name: (previous[name] if previous is not None and name in previous else None) for name, _ in chosen}
    masks: dict[str, torch.Tensor] = {}
    if quality is not None:
        for name, module in chosen:
            q = float(per_layer(quality, name, module, "quality"))
            if q < 0:
                raise CompressionError(f"quality for layer {name!r} must be >= 0, got {q}.")
            w = module.weight.detach()
            kept = w if prev[name] is None else w[prev[name]]
            threshold = q * float(kept.std()) if kept.numel() > 1 else 0.0
            mask = w.abs() >= threshold
            masks[name] = mask if prev[name] is None else mask & prev[name]
        return Masks(masks)
    if scope == "global":
        if isinstance(rate, dict):
            raise CompressionError("scope='global' takes one pruning rate, not a dict per layer.")
        r = _check_rate(rate, "<all layers>")
        mags = []
        for name, module in chosen:
            m = module.weight.detach().abs().flatten()
            if prev[name] is not None:
                m = torch.where(prev[name].flatten(), m, torch.full_like(m, -1.0))
            mags.append(m)
        allmag = torch.cat(mags)
        n_prune = int(round(r * allmag.numel()))
        if n_prune == 0:
            threshold = -0.5
        else:
            threshold = float(torch.kthvalue(allmag, n_prune).values)
        for (name, module), m in zip(chosen, mags):
            keep = (m > threshold).view_as(module.weight)
            masks[name] = keep
        return Masks(masks)
    for name, module in chosen:
        r = _check_rate(per_layer(rate, name, module, "rate"), name)
        masks[name] = _keep_largest(module.weight, r, prev[name])
    return Masks(masks)


def prune(
    model: nn.Module,
    *,
    rate: float | dict[str, float] | None = None,
    quality: float | dict[str, float] | None = None,
    scope: str = "layer",
    layers: Iterable[str] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Magnitude pruning as a model transform: pruned weights set to zero and masked.

    The pruned layers' weights are parametrized by their masks (see :mod:`workbench.sparse.masks`), so
    training cannot revive them and checkpoints keep them. Masks already on the model are respected
    (pruned weights stay pruned). See :func:`magnitude_masks`.
    """
    model = maybe_copy(model, inplace)
    previous = get_masks(model)
    masks = magnitude_masks(model, rate=rate, quality=quality, scope=scope, layers=layers, previous=previous)
    if previous is not None:
        masks = previous & masks
    set_masks(model, masks)
    return record_edit(
        model,
        "prune",
        rate=rate,
        quality=quality,
        scope=scope,
        layers=None if layers is None else list(layers),
        density=masks.density(),
    )


def iterative_prune(
    model: nn.Module,
    train_data: Any,
    *,
    rates: Sequence[float | dict[str, float]],
    retrain_epochs: int = 2,
    scope: str = "layer",
    layers: Iterable[str] | None = None,
    val_data: Any = None,
    teacher: nn.Module | str | None = None,
    distill_options: dict[str, Any] | None = None,
    inplace: bool = False,
    **fit_kwargs: Any,
) -> nn.Module:
    """Iterative prune-retrain (Han et al. 2015): for each rate, prune to it, then retrain with masks held.

    ``rates`` are cumulative fractions of each layer's weights (e.g. ``[0.5, 0.75, 0.9]``); other keyword
    arguments go to ``workbench.train.fit``. The per-round log is the note ``"prune_log"`` (``workbench.edits.note``).
    ``teacher`` makes every retraining distil from a network (``"input"``: a frozen copy of ``model`` as
    it was given) instead of fitting the labels alone; ``distill_options`` go to ``workbench.train.distill``.
    """
    from workbench.train import evaluate, retrain

    if not rates:
        raise CompressionError("iterative_prune needs at least one pruning rate in `rates`.")
    teacher = resolve_teacher(teacher, model)
    model = maybe_copy(model, inplace)
    log = []
    for round_index, rate in enumerate(rates):
        prune(model, rate=rate, scope=scope, layers=layers, inplace=True)
        masks = get_masks(model)
        entry = {"round": round_index, "rate": rate, "density": masks.density()}
        if retrain_epochs > 0:
            retrain(
                model,
                train_data,
                val_data=val_data,
                epochs=retrain_epochs,  # the masks hold in training
                teacher=teacher,
                distill_options=distill_options,
                **fit_kwargs,
            )
        if val_data is not None:
            entry["val_accuracy"] = evaluate(model, val_data)["accuracy"]
        log.append(entry)
    return set_note(model, "prune_log", log)
