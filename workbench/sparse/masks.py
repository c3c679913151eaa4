"""Pruning masks as weight parametrizations: pruned weights are exactly zero in every forward pass.

A pruned layer's weight is parametrized as ``W * mask`` (:class:`WeightMask`, the outermost
parametrization of the weight, above any quantizer), so that

- training (``workbench.train.fit`` or any optimizer) cannot revive a pruned weight: its gradient is zero;
- the mask is part of the ``state_dict`` and survives checkpoints (``workbench.checkpoints``);
- quantizers attached later keep the mask (:func:`workbench.sparse.layers.attach` puts it back on top).

:class:`Masks` is the value object the pruning methods compute (one boolean tensor per layer);
:func:`set_masks` attaches it, :func:`get_masks` reads it back, ``set_masks(model, None)`` lets pruned
weights grow back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.edits import restorable
from workbench.errors import CompressionError
from workbench.sparse.layers import register, remove_parametrization, weight_layers


@restorable("mask")
class WeightMask(nn.Module):
    """Weight parametrization ``W -> W * mask`` (``mask`` a boolean buffer of the weight's shape)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask.to(weight.dtype)

    def config(self) -> dict[str, Any]:
        """Nothing beyond the mask buffer (restored from the state_dict)."""
        return {}

    @classmethod
    def placeholder(cls, config: dict[str, Any], shape: tuple[int, ...]) -> WeightMask:
        """An all-kept mask of ``shape``; ``load_state_dict`` fills in the saved one."""
        return cls(torch.ones(shape, dtype=torch.bool))


class Masks:
    """One boolean mask per layer weight (True = kept), keyed by layer name: what pruning computes.

    Attach to a model with :func:`set_masks` (or :meth:`apply`, which also zeros the pruned weights).
    """

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self._masks = {name: mask.detach().to(torch.bool).clone() for name, mask in masks.items()}

    @classmethod
    def ones(cls, model: nn.Module, layers: Iterable[str] | None = None) -> Masks:
        """All-True masks for the weight layers of ``model``."""
        return cls({name: torch.ones_like(m.weight, dtype=torch.bool) for name, m in weight_layers(model, layers)})

    @classmethod
    def from_zeros(cls, model: nn.Module, layers: Iterable[str] | None = None) -> Masks:
        """Masks that keep exactly the nonzero weights of ``model``."""
        return cls({name: m.weight.detach() != 0 for name, m in weight_layers(model, layers)})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __contains__(self, name: object) -> bool:
        return name in self._masks

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def items(self):
        """``(layer name, mask)`` pairs."""
        return self._masks.items()

    def apply(self, model: nn.Module) -> nn.Module:
        """Attach these masks to ``model`` in place (see :func:`set_masks`); returns ``model``."""
        return set_masks(model, self)

    def nonzero(self) -> int:
        """Number of kept weights."""
        return int(sum(int(m.sum()) for m in self._masks.values()))

    def total(self) -> int:
        """Number of masked weights (kept or not)."""
        return int(sum(m.numel() for m in self._masks.values()))

    def density(self) -> float:
        """Kept fraction over all masked weights."""
        return self.nonzero() / max(self.total(), 1)

    def per_layer(self) -> dict[str, float]:
        """Layer name -> kept fraction."""
        return {name: float(m.float().mean()) for name, m in self._masks.items()}

    def __and__(self, other: Masks) -> Masks:
        out = {}
        for name in set(self._masks) | set(other._masks):
            if name in self._masks and name in other._masks:
                out[name] = self._masks[name] & other._masks[name]
            else:
                out[name] = self._masks.get(name, other._masks.get(name))
        return Masks(out)

    def __repr__(self) -> str:
        return f"Masks({len(self)} layers, density={self.density():.4f})"


def weight_mask(module: nn.Module) -> WeightMask | None:
    """The :class:`WeightMask` on ``module.weight`` (always its outermost parametrization), or None."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    last = module.parametrizations.weight[-1]
    return last if isinstance(last, WeightMask) else None


def pop_mask(module: nn.Module) -> torch.Tensor | None:
    """Take the mask off ``module.weight`` (pruned weights stay zero); returns it, or None if there was none."""
    found = weight_mask(module)
    if found is None:
        return None
    chain = module.parametrizations.weight
    if len(chain) == 1:
        remove_parametrization(module, "weight")
    else:
        del chain[-1]
    return found.mask


@torch.no_grad()
def push_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Mask ``module.weight`` with ``mask`` (as its outermost parametrization), zeroing the pruned entries of
    the tensor underneath when it has the weight's shape (plain or fixed-point weights)."""
    if parametrize.is_parametrized(module, "weight"):
        underneath = module.parametrizations.weight.original
    else:
        underneath = module.weight
    if tuple(underneath.shape) == tuple(mask.shape):
        underneath.mul_(mask.to(underneath.device, underneath.dtype))
    register(module, WeightMask(mask.to(underneath.device)))


def get_masks(model: nn.Module) -> Masks | None:
    """The pruning masks on ``model``'s layers, or None when no layer is masked."""
    found = {name: m.mask for name, module in model.named_modules() if (m := weight_mask(module)) is not None}
    return Masks(found) if found else None


def set_masks(model: nn.Module, masks: Masks | None) -> nn.Module:
    """Mask ``model``'s layers with ``masks`` in place, replacing any masks it had; None removes them all
    (pruned weights stay zero but may grow back in training). Returns ``model``.

    Raises
    ------
    CompressionError
        A mask names a layer the model does not have, or does not have the layer weight's shape.
    """
    modules = dict(model.named_modules())
    if masks is not None:
        for name, mask in masks.items():
            weight = getattr(modules.get(name), "weight", None)
            if not isinstance(weight, torch.Tensor):
                raise _mismatch(name, "the model has no such weight layer")
            if tuple(weight.shape) != tuple(mask.shape):
                raise _mismatch(name, f"it has shape {tuple(mask.shape)} but the weight has {tuple(weight.shape)}")
    for module in modules.values():
        pop_mask(module)
    for name, mask in masks.items() if masks is not None else ():
        push_mask(modules[name], mask)
    return model


def lift_masks(model: nn.Module) -> list[str]:
    """Take every pruning mask off ``model`` in place (pruned weights stay zero); returns the masked layers'
    names, for :func:`mask_zeros` to mask them again after a rebuild."""
    return [name for name, module in list(model.named_modules()) if pop_mask(module) is not None]


def mask_zeros(model: nn.Module, layers: Iterable[str]) -> nn.Module:
    """Mask the named layers of ``model`` (those that still exist) at exactly the zeros they have now; returns
    ``model``. Used after a rebuild: pruned weights of kept units stay pruned, rows a fusion wrote stay dense."""
    modules = dict(model.named_modules())
    for name in layers:
        module = modules.get(name)
        if isinstance(getattr(module, "weight", None), torch.Tensor) and weight_mask(module) is None:
            push_mask(module, module.weight.detach() != 0)
    return model


def _mismatch(name: str, problem: str) -> CompressionError:
    return CompressionError(
        f"the mask for layer {name!r} does not match the model: {problem}. Compute masks on this model "
        "(e.g. Masks.from_zeros(model)) before attaching them."
    )
