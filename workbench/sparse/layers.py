"""Finding the weight layers a transform works on, and attaching weight parametrizations to them."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.errors import CompressionError, closest
from workbench.utils import own_class

#: Layer types whose ``weight`` the compression transforms know how to handle.
WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def layer_kind(module: nn.Module) -> str:
    """``"conv"`` for convolutions, ``"linear"`` for fully connected layers."""
    return "conv" if isinstance(module, CONV_LAYERS) else "linear"


def weight_layers(
    model: nn.Module,
    layers: Iterable[str] | None = None,
    types: tuple[type[nn.Module], ...] = WEIGHT_LAYERS,
    what: str = "this transform",
) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the layers of ``model`` to transform, in definition order.

    Parameters
    ----------
    model
        Any ``nn.Module``.
    layers
        Names of the layers to use (as in ``model.named_modules()``); all layers of ``types`` when None.
    types
        The layer types ``what`` supports.
    what
        Name of the transform, for error messages.

    Raises
    ------
    CompressionError
        A named layer does not exist or is of a type ``what`` does not support, or no layer qualifies.
    """
    modules = dict(model.named_modules())
    if layers is None:
        found = [(name, m) for name, m in modules.items() if name and isinstance(m, types)]
        if not found:
            kinds = ", ".join(t.__name__ for t in types)
            raise CompressionError(f"{what} found no layer of a supported type ({kinds}) in {type(model).__name__}.")
        return found
    chosen = []
    for name in layers:
        if name not in modules or not name:
            raise CompressionError(
                f"{what}: model has no layer {name!r}.{closest(name, [n for n in modules if n])} "
                "Pass names as listed by model.named_modules()."
            )
        module = modules[name]
        if not isinstance(module, types):
            kinds = ", ".join(t.__name__ for t in types)
            raise CompressionError(
                f"{what} does not support layer {name!r} of type {type(module).__name__}; supported: {kinds}."
            )
        chosen.append((name, module))
    return chosen


def per_layer(value, name: str, module: nn.Module, parameter: str):
    """Resolve a per-layer setting: a scalar, or a dict keyed by layer name or by kind ("conv"/"linear").

    Raises CompressionError naming the layer and ``parameter`` when a dict has no entry for the layer.
    """
    if isinstance(value, dict):
        if name in value:
            return value[name]
        kind = layer_kind(module)
        if kind in value:
            return value[kind]
        if "default" in value:
            return value["default"]
        raise CompressionError(
            f"{parameter} has no entry for layer {name!r}; give its name, its kind {kind!r} or a 'default' key."
        )
    return value


def per_layer_fraction(value, name: str, module: nn.Module, parameter: str) -> float:
    """:func:`per_layer` for a fraction in (0, 1]; CompressionError naming the layer and ``parameter`` otherwise."""
    fraction = per_layer(value, name, module, parameter)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) <= 1.0:
        raise CompressionError(f"{parameter} for layer {name!r} must be in (0, 1], got {fraction!r}.")
    return float(fraction)


def maybe_copy(model: nn.Module, inplace: bool) -> nn.Module:
    """``model`` itself when ``inplace``, else a deep copy (keeping zoo attributes)."""
    return model if inplace else copy.deepcopy(model)


def resolve_teacher(teacher: nn.Module | list | str | None, model: nn.Module) -> nn.Module | list | None:
    """The teacher a transform retrains against: None, a given module, or for ``"input"`` a frozen copy of
    ``model`` as it is now (before the transform changes it)."""
    if teacher is None or isinstance(teacher, nn.Module):
        return teacher
    if isinstance(teacher, (list, tuple)) and teacher and all(isinstance(t, nn.Module) for t in teacher):
        return list(teacher)
    if teacher == "input":
        frozen = copy.deepcopy(model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        return frozen
    raise CompressionError(
        f"teacher must be None, 'input' (the uncompressed model), a torch module or a list of them, got {teacher!r}."
    )


def remove_parametrization(module: nn.Module, name: str = "weight") -> None:
    """Remove every parametrization of ``module.<name>`` in place, leaving the parametrized value as a plain
    tensor (safe on deep copies, see :func:`own_class`)."""
    parametrize.remove_parametrizations(own_class(module), name, leave_parametrized=True)


def register(module: nn.Module, parametrization: nn.Module, name: str = "weight") -> None:
    """Append ``parametrization`` to ``module.<name>``'s chain in place (safe on deep copies)."""
    parametrize.register_parametrization(own_class(module), name, parametrization, unsafe=True)


def attach(module: nn.Module, parametrization: nn.Module, name: str = "weight") -> None:
    """Register ``parametrization`` on ``module.<name>``, replacing any earlier one (baked in first).

    A pruning mask (:class:`workbench.sparse.masks.WeightMask`) is not replaced: it is taken off first
    and put back on top, so pruned weights stay zero under the new parametrization too.
    """
    from workbench.sparse.masks import pop_mask, push_mask

    mask = pop_mask(module) if name == "weight" else None
    if parametrize.is_parametrized(module, name):
        remove_parametrization(module, name)
    register(module, parametrization, name)
    if mask is not None:
        push_mask(module, mask)


def weight_parametrization(module: nn.Module, name: str = "weight") -> nn.Module | None:
    """The (last) parametrization on ``module.<name>`` below any pruning mask, or None."""
    from workbench.sparse.masks import WeightMask

    if not parametrize.is_parametrized(module, name):
        return None
    chain = [p for p in module.parametrizations[name] if not isinstance(p, WeightMask)]
    return chain[-1] if chain else None


def bake(model: nn.Module) -> nn.Module:
    """Remove every weight parametrization in place, leaving the parametrized values as plain weights."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                remove_parametrization(module, name)
    return model


def current_weight(module: nn.Module) -> torch.Tensor:
    """The weight ``module`` uses in its forward pass (parametrized or not), detached."""
    return module.weight.detach()
