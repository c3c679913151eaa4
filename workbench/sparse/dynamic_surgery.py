"""Dynamic network surgery (Guo, Yao & Chen, NIPS 2016): pruning and splicing during training.

Each layer's forward uses ``W * T`` (T a 0/1 mask) while the dense ``W`` keeps receiving the full gradient
``dL/d(W*T)`` (straight through the mask), so a pruned weight can grow back. Every few steps the mask is
recomputed with two thresholds ``a < b``: ``|W| < a`` -> 0, ``|W| > b`` -> 1 (spliced back), else unchanged.
As in the authors' code, ``a = 0.9 * max(mu + c * sigma, 0)`` and ``b = 1.1 * max(mu + c * sigma, 0)``
with ``mu``/``sigma`` the mean and standard deviation of ``|W|`` of the layer, and ``c`` the layer's
``c_rate``; surgery happens with probability ``(1 + gamma * step) ** -power``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from workbench.edits import record_edit, restorable
from workbench.errors import CompressionError
from workbench.sparse.layers import (
    attach,
    maybe_copy,
    per_layer,
    remove_parametrization,
    weight_layers,
    weight_parametrization,
)
from workbench.sparse.masks import Masks, set_masks
from workbench.utils import RandomState, check_random_state


class _MaskStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return grad, None


@restorable("surgery-mask")
class SurgeryMask(nn.Module):
    """Weight parametrization ``W -> W * T`` whose gradient reaches every entry of ``W``."""

    def __init__(self, weight: torch.Tensor, c_rate: float) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones_like(weight))
        self.c_rate = float(c_rate)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _MaskStraightThrough.apply(weight, self.mask)

    def config(self) -> dict[str, float]:
        """The layer's ``c_rate`` (the mask itself is a buffer)."""
        return {"c_rate": self.c_rate}

    @classmethod
    def placeholder(cls, config: dict[str, float], shape: tuple[int, ...]) -> SurgeryMask:
        """A mask of ``shape`` for ``load_state_dict`` to fill."""
        return cls(torch.ones(shape), config["c_rate"])

    def thresholds(self, weight: torch.Tensor) -> tuple[float, float]:
        """``(a, b)`` for this layer's dense weights (see the module docstring)."""
        mag = weight.detach().abs()
        mu = float(mag.mean())
        sigma = float(mag.std(unbiased=False)) if mag.numel() > 1 else 0.0
        base = max(mu + self.c_rate * sigma, 0.0)
        return 0.9 * base, 1.1 * base

    @torch.no_grad()
    def update(self, weight: torch.Tensor) -> tuple[int, int]:
        """Recompute the mask from the dense ``weight``; returns (#pruned now, #spliced back now)."""
        a, b = self.thresholds(weight)
        mag = weight.detach().abs()
        old = self.mask.bool()
        new = old.clone()
        new[mag < a] = False
        new[mag > b] = True
        self.mask.copy_(new.to(self.mask.dtype))
        return int((old & ~new).sum()), int((~old & new).sum())

    def storage(self, weight: torch.Tensor):  # noqa: D102  (see workbench.metrics.storage)
        return None  # stored as the sparse masked weight: the storage report counts it as CSR


def dense_weight(module: nn.Module) -> torch.Tensor:
    """The dense ``W`` behind a surgery-masked layer (the plain weight for other layers)."""
    if weight_parametrization(module) is not None:
        return module.parametrizations.weight.original
    return module.weight


def dynamic_surgery(
    model: nn.Module,
    *,
    c_rate: float | dict[str, float] = 0.0,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Prepare ``model`` for dynamic network surgery: masked forward, dense straight-through updates.

    Train it with ``SurgeryHook`` in ``fit(hooks=...)``; afterwards :func:`finish_surgery` bakes in the
    masks. ``c_rate`` (one number or per layer / kind) moves the thresholds: larger means sparser.
    """
    model = set_masks(maybe_copy(model, inplace), None)  # surgery may splice weights an earlier pruning removed
    for name, module in weight_layers(model, layers, what="dynamic network surgery"):
        c = per_layer(c_rate, name, module, "c_rate")
        try:
            c = float(c)
        except (TypeError, ValueError):
            raise CompressionError(f"c_rate for layer {name!r} must be a number, got {c!r}.") from None
        attach(module, SurgeryMask(module.weight, c))
    surgery_step(model, probability=1.0)
    return record_edit(model, "dynamic-surgery", c_rate=c_rate, layers=None if layers is None else list(layers))


def surgery_layers(model: nn.Module) -> list[tuple[str, nn.Module, SurgeryMask]]:
    """``(name, module, SurgeryMask)`` for every surgery-masked layer of ``model``."""
    out = []
    for name, module in model.named_modules():
        p = weight_parametrization(module)
        if isinstance(p, SurgeryMask):
            out.append((name, module, p))
    return out


def surgery_step(model: nn.Module, probability: float = 1.0, random_state: RandomState = None) -> dict[str, int]:
    """Recompute all surgery masks (each with ``probability``); returns counts of pruned/spliced weights."""
    rng = check_random_state(random_state) if probability < 1.0 else None
    pruned = spliced = 0
    for _, module, p in surgery_layers(model):
        if rng is not None and rng.random() >= probability:
            continue
        a, b = p.update(module.parametrizations.weight.original)
        pruned += a
        spliced += b
    return {"pruned": pruned, "spliced": spliced}


class SurgeryHook:
    """Training hook for :func:`dynamic_surgery`: updates the masks after optimizer steps.

    Every ``interval`` steps the masks are recomputed with probability ``(1 + gamma * step) ** -power``
    (the paper's decaying surgery frequency). ``totals`` counts pruned and spliced weights.
    """

    def __init__(
        self, interval: int = 1, gamma: float = 1e-4, power: float = 1.0, random_state: RandomState = 0
    ) -> None:
        if interval < 1:
            raise CompressionError(f"SurgeryHook interval must be >= 1, got {interval}.")
        self.interval = int(interval)
        self.gamma = float(gamma)
        self.power = float(power)
        self.rng = check_random_state(random_state)
        self.step = 0
        self.totals = {"pruned": 0, "spliced": 0}

    def after_step(self, model: nn.Module) -> None:
        self.step += 1
        if self.step % self.interval:
            return
        probability = (1.0 + self.gamma * self.step) ** (-self.power)
        counts = surgery_step(model, probability=probability, random_state=self.rng)
        for key, value in counts.items():
            self.totals[key] += value


def finish_surgery(model: nn.Module) -> nn.Module:
    """End the surgery in place: each surgery mask becomes a fixed pruning mask (the masked weights
    zero, held at zero in later training, see :mod:`workbench.sparse.masks`); returns ``model``."""
    masks = {}
    for name, module, p in surgery_layers(model):
        mask = p.mask.bool().clone()
        remove_parametrization(module, "weight")
        masks[name] = mask
    out = Masks(masks)
    set_masks(model, out)
    return record_edit(model, "finish-surgery", density=out.density())
