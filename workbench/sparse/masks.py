"""Boolean weight masks that keep pruned weights exactly zero while a network is retrained."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from workbench.errors import CompressionError
from workbench.sparse.layers import weight_layers


class Masks:
    """One boolean mask per layer weight (True = kept), keyed by layer name.

    Apply with :meth:`apply` (zeros pruned weights) and keep them zero during training with
    :meth:`hook` (a ``workbench.train.fit`` hook: gradients of pruned weights are zeroed before each
    optimizer step and the weights re-zeroed after it, so momentum or weight decay cannot revive them).
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

    def _targets(self, model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(tensor, mask)`` pairs: each layer's weight, or the trained tensor under a weight
        parametrization of the same shape (fixed point, surgery, ...); a parametrization over another
        tensor (shared-weight centroids, hashed buckets) holds its own structure and is skipped."""
        modules = dict(model.named_modules())
        out = []
        for name, mask in self._masks.items():
            weight = getattr(modules.get(name), "weight", None)
            if not isinstance(weight, torch.Tensor):
                raise _mismatch(name, "the model has no such weight layer")
            if tuple(weight.shape) != tuple(mask.shape):
                raise _mismatch(name, f"it has shape {tuple(mask.shape)} but the weight has {tuple(weight.shape)}")
            parametrizations = getattr(modules[name], "parametrizations", None)
            if parametrizations is not None and "weight" in parametrizations:
                weight = getattr(parametrizations.weight, "original", None)
            if weight is not None and tuple(weight.shape) == tuple(mask.shape):
                out.append((weight, mask))
        return out

    def check(self, model: nn.Module) -> None:
        """Raise :class:`CompressionError` unless every mask matches a weight of ``model``."""
        self._targets(model)

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of ``model`` in place; returns ``model``."""
        for tensor, mask in self._targets(model):
            tensor.mul_(mask.to(tensor.device, tensor.dtype))
        return model

    @torch.no_grad()
    def zero_grads(self, model: nn.Module) -> None:
        """Zero the gradients of pruned weights in place."""
        for tensor, mask in self._targets(model):
            if tensor.grad is not None:
                tensor.grad.mul_(mask.to(tensor.grad.device, tensor.grad.dtype))

    def hook(self) -> MaskHook:
        """A training hook keeping pruned weights at zero (see :class:`MaskHook`)."""
        return MaskHook(self)

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
        names = set(self._masks) | set(other._masks)
        out = {}
        for name in names:
            if name in self._masks and name in other._masks:
                out[name] = self._masks[name] & other._masks[name]
            else:
                out[name] = self._masks.get(name, other._masks.get(name))
        return Masks(out)

    def __repr__(self) -> str:
        return f"Masks({len(self)} layers, density={self.density():.4f})"


def _mismatch(name: str, problem: str) -> CompressionError:
    return CompressionError(
        f"the mask for layer {name!r} does not match the model: {problem}. Attach masks that match "
        "(workbench.sparse.set_masks(model, Masks.from_zeros(model))) or train with keep_masks=False."
    )


class MaskHook:
    """Training hook: ``before_step`` zeros pruned gradients, ``after_step`` re-zeros pruned weights."""

    def __init__(self, masks: Masks) -> None:
        self.masks = masks

    def before_step(self, model: nn.Module) -> None:
        self.masks.zero_grads(model)

    def after_step(self, model: nn.Module) -> None:
        self.masks.apply(model)


def get_masks(model: nn.Module) -> Masks | None:
    """The masks a pruning transform attached to ``model`` (``model.workbench_masks``), or None."""
    return getattr(model, "workbench_masks", None)


def set_masks(model: nn.Module, masks: Masks | None) -> nn.Module:
    """Attach ``masks`` to ``model`` (``workbench.train.fit`` then keeps them), or detach with None."""
    if masks is None:
        model.__dict__.pop("workbench_masks", None)
    else:
        model.workbench_masks = masks
    return model


def hooks_with_masks(model: nn.Module, hooks: Iterable[Any], keep: bool = True) -> list[Any]:
    """``hooks`` plus the hook of the masks ``model`` carries (unless ``keep`` is False or it is there).

    Raises :class:`CompressionError` when those masks no longer match the model's layers.
    """
    hooks = list(hooks)
    masks = get_masks(model)
    if not keep or masks is None or any(getattr(hook, "masks", None) is masks for hook in hooks):
        return hooks
    masks.check(model)
    return [*hooks, masks.hook()]


def carry_masks(source: nn.Module, result: nn.Module) -> nn.Module:
    """Give ``result`` (``source`` rebuilt: fewer units, factorized layers) masks of its own.

    Every layer masked in ``source`` that is still a weight layer of ``result`` is masked at exactly the
    zeros it has now (pruned weights of kept units stay pruned; dense rows a fusion wrote stay dense);
    layers that were replaced lose their mask. Returns ``result``.
    """
    masks = get_masks(source)
    if masks is None:
        return result
    modules = dict(result.named_modules())
    names = [name for name in masks if isinstance(getattr(modules.get(name), "weight", None), torch.Tensor)]
    return set_masks(result, Masks.from_zeros(result, names) if names else None)
