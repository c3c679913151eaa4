"""Binary, ternary and power-of-two weights with straight-through gradients.

- BinaryConnect (Courbariaux et al., NIPS 2015): forward with ``sign(W)`` (deterministic) or a stochastic
  binarization with ``P(+1) = hard_sigmoid(W) = clip((W + 1) / 2, 0, 1)``; the real-valued weights are
  kept, receive the gradient unchanged (straight through) and are clipped to ``[-1, 1]`` after each step
  (:class:`ClipHook`).
- Binarized Neural Networks (Hubara et al., NIPS 2016): binary weights *and* activations; the activation
  ``sign(x)`` passes gradients only where ``|x| <= 1`` (the hardtanh gate).
- Neural networks with few multiplications (Lin et al., ICLR 2016): stochastic ternary weights ("ternary
  connect") and quantized back-propagation: the layer input used to form the weight gradient is rounded
  to a power of two, so ``dL/dW = delta x^T`` needs only shifts. Also power-of-two weights.

Each weight scheme is a parametrization (:class:`BinaryWeight`, :class:`TernaryWeight`,
:class:`PowerOfTwoWeight`); with ``scale="mean"`` the weights are ``alpha * {-1, (0,) +1}`` with one
stored ``alpha = mean |W|`` per layer, which keeps the signal scale of networks without BatchNorm.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from workbench.edits import record_edit, restorable
from workbench.errors import CompressionError
from workbench.sparse.layers import attach, maybe_copy, weight_layers, weight_parametrization
from workbench.utils import RandomState, seed_from

MODES = ("det", "stoch")
SCALES = ("none", "mean")


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return q.detach() + (x - x.detach())  # value exactly q, gradient straight through


def _sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _check(mode: str, scale: str) -> None:
    if mode not in MODES:
        raise CompressionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    if scale not in SCALES:
        raise CompressionError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}.")


class _Discrete(nn.Module):
    """Common parts: stochastic generator, scale, storage at ``levels`` bits per weight plus the scale."""

    level_bits = 1

    def __init__(self, mode: str = "det", scale: str = "none", random_state: RandomState = 0) -> None:
        super().__init__()
        _check(mode, scale)
        self.mode, self.scale = mode, scale
        self.seed = seed_from(random_state)
        self.generator = torch.Generator().manual_seed(self.seed)

    def config(self) -> dict[str, Any]:
        """Constructor settings, for checkpoints."""
        return {"mode": self.mode, "scale": self.scale, "seed": self.seed}

    @classmethod
    def placeholder(cls, config: dict[str, Any], shape: tuple[int, ...]):
        """The parametrization ``config`` describes (it holds no tensors)."""
        settings = dict(config)
        return cls(random_state=settings.pop("seed"), **settings)

    def _alpha(self, weight: torch.Tensor) -> torch.Tensor:
        if self.scale == "mean":
            return weight.detach().abs().mean().clamp_min(1e-12)
        return torch.ones((), dtype=weight.dtype, device=weight.device)

    def _uniform(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.rand(weight.shape, generator=self.generator, dtype=weight.dtype).to(weight.device)

    def storage(self, module: nn.Module):
        """``level_bits`` per weight, plus one fp32 scale when ``scale="mean"``."""
        from workbench.metrics.storage import WeightStorage

        w = module.weight.detach()
        bits = w.numel() * self.level_bits + (32 if self.scale == "mean" else 0)
        return WeightStorage(
            type(self).__name__.replace("Weight", "").lower(),
            bits,
            int((w != 0).sum()),
            {"bits_per_weight": self.level_bits, "scale": self.scale},
        )


@restorable("binary")
class BinaryWeight(_Discrete):
    """BinaryConnect weights: ``alpha * sign(W)`` (det) or stochastic hard-sigmoid binarization (stoch).

    The stochastic mode samples only in training; in eval mode the deterministic sign is used.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.mode == "stoch" and self.training:
            p = torch.clamp((weight.detach() + 1) / 2, 0, 1)
            b = torch.where(self._uniform(weight) < p, 1.0, -1.0).to(weight.dtype)
        else:
            b = _sign(weight.detach())
        return _ste(weight, self._alpha(weight) * b)


@restorable("ternary")
class TernaryWeight(_Discrete):
    """Ternary weights in ``alpha * {-1, 0, 1}`` (Lin et al.'s ternary connect).

    stoch (training): ``|W|`` clipped to [0, 1] is the probability of ``sign(W)``, else 0 (unbiased for
    ``|W| <= 1``). det / eval: ``sign(W)`` where ``|W| > threshold * max|W|`` (default 0.5 of the range
    after clipping to [-1, 1]), else 0.
    """

    level_bits = 2

    def __init__(
        self, mode: str = "det", scale: str = "none", threshold: float = 0.5, random_state: RandomState = 0
    ) -> None:
        super().__init__(mode, scale, random_state)
        if not 0.0 <= threshold < 1.0:
            raise CompressionError(f"ternary threshold must be in [0, 1), got {threshold}.")
        self.threshold = float(threshold)

    def config(self) -> dict[str, Any]:  # noqa: D102
        return {**super().config(), "threshold": self.threshold}

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.detach()
        if self.scale == "mean":
            u = (w / (2 * w.abs().mean()).clamp_min(1e-12)).clamp(-1, 1)
        else:
            u = w.clamp(-1, 1)
        if self.mode == "stoch" and self.training:
            t = _sign(u) * (self._uniform(weight) < u.abs()).to(w.dtype)
        else:
            t = _sign(u) * (u.abs() > self.threshold).to(w.dtype)
        alpha = self._alpha(weight)
        if self.scale == "mean":
            nz = t != 0
            alpha = w.abs()[nz].mean() if bool(nz.any()) else alpha
        return _ste(weight, alpha * t)


def pow2_quantize(x: torch.Tensor, min_exp: int = -8, max_exp: int = 0) -> torch.Tensor:
    """Round magnitudes to the nearest power of two in ``[2**min_exp, 2**max_exp]`` (log domain), keeping
    signs; magnitudes below ``2**(min_exp - 1)`` become 0."""
    mag = x.abs()
    e = torch.round(torch.log2(mag.clamp_min(2.0 ** (min_exp - 2))))
    e = torch.clamp(e, min_exp, max_exp)
    q = torch.sign(x) * torch.pow(2.0, e)
    return torch.where(mag < 2.0 ** (min_exp - 1), torch.zeros_like(x), q)


@restorable("power-of-two")
class PowerOfTwoWeight(nn.Module):
    """Weights rounded to ``±2**e`` (or 0) with ``e`` in ``[min_exp, max_exp]``; straight-through gradient."""

    def __init__(self, min_exp: int = -8, max_exp: int = 0) -> None:
        super().__init__()
        if min_exp > max_exp:
            raise CompressionError(f"min_exp ({min_exp}) must be <= max_exp ({max_exp}).")
        self.min_exp, self.max_exp = int(min_exp), int(max_exp)

    def config(self) -> dict[str, int]:
        """Constructor settings, for checkpoints."""
        return {"min_exp": self.min_exp, "max_exp": self.max_exp}

    @classmethod
    def placeholder(cls, config: dict[str, int], shape: tuple[int, ...]) -> PowerOfTwoWeight:
        """The parametrization ``config`` describes (it holds no tensors)."""
        return cls(**config)

    @property
    def level_bits(self) -> int:
        """Sign + exponent code (including the zero code)."""
        return 1 + math.ceil(math.log2(self.max_exp - self.min_exp + 2))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _ste(weight, pow2_quantize(weight.detach(), self.min_exp, self.max_exp))

    def storage(self, module: nn.Module):
        from workbench.metrics.storage import WeightStorage

        w = module.weight.detach()
        return WeightStorage(
            "power-of-two",
            w.numel() * self.level_bits + 16,
            int((w != 0).sum()),
            {"bits_per_weight": self.level_bits, "min_exp": self.min_exp, "max_exp": self.max_exp},
        )


class ClipHook:
    """Training hook clipping the real-valued weights of binary/ternary layers to ``[-limit, limit]``."""

    def __init__(self, limit: float = 1.0) -> None:
        self.limit = float(limit)

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        for module in model.modules():
            p = weight_parametrization(module)
            if isinstance(p, (BinaryWeight, TernaryWeight)) and p.scale == "none":
                module.parametrizations.weight.original.clamp_(-self.limit, self.limit)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: D102
        ctx.save_for_backward(x)
        return _sign(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class SignActivation(nn.Module):
    """BNN activation: ``sign(x)`` forward, gradient passed where ``|x| <= 1`` (hardtanh's derivative)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SignSTE.apply(x)


def _discretize(model, layers, make, what: str, inplace: bool, **settings: Any):
    model = maybe_copy(model, inplace)
    for _, module in weight_layers(model, layers, what=what):
        attach(module, make())
    return record_edit(model, what.replace("_", "-"), layers=None if layers is None else list(layers), **settings)


def binary_connect(
    model: nn.Module,
    *,
    mode: str = "det",
    scale: str = "none",
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """BinaryConnect: binary weights in forward and backward, real weights updated (use :class:`ClipHook`)."""
    _check(mode, scale)
    return _discretize(
        model,
        layers,
        lambda: BinaryWeight(mode, scale, random_state),
        "binary_connect",
        inplace,
        mode=mode,
        scale=scale,
    )


def binarize_network(
    model: nn.Module,
    *,
    scale: str = "none",
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """Binarized Neural Network: binary weights and every activation module replaced by :class:`SignActivation`."""
    from workbench.quantize.fixed_point import ACTIVATIONS

    model = binary_connect(model, mode="det", scale=scale, layers=layers, inplace=inplace, random_state=random_state)
    names = [
        f"{parent_name}.{child_name}" if parent_name else child_name
        for parent_name, parent in model.named_modules()
        for child_name, child in parent.named_children()
        if isinstance(child, ACTIVATIONS)
    ]
    if not names:
        raise CompressionError(
            f"{type(model).__name__} has no activation modules to binarize; BNNs need nn.ReLU/nn.Tanh/... modules."
        )
    edit = {"op": "sign-activations", "names": names}
    return record_edit(replay_sign_activations(model, edit), **edit)


def replay_sign_activations(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Replace the activations a ``"sign-activations"`` edit names by :class:`SignActivation`, in place."""
    for name in edit["names"]:
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child_name, SignActivation())
    return model


def ternary_connect(
    model: nn.Module,
    *,
    mode: str = "stoch",
    scale: str = "none",
    threshold: float = 0.5,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """Ternary weights (stochastic in training by default, as in Lin et al. 2016)."""
    _check(mode, scale)
    TernaryWeight(mode, scale, threshold)  # validates threshold
    return _discretize(
        model,
        layers,
        lambda: TernaryWeight(mode, scale, threshold, random_state),
        "ternary_connect",
        inplace,
        mode=mode,
        scale=scale,
        threshold=threshold,
    )


def power_of_two(
    model: nn.Module,
    *,
    min_exp: int = -8,
    max_exp: int = 0,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Power-of-two weights (multiplications become shifts)."""
    PowerOfTwoWeight(min_exp, max_exp)  # validates
    return _discretize(
        model,
        layers,
        lambda: PowerOfTwoWeight(min_exp, max_exp),
        "power_of_two",
        inplace,
        min_exp=min_exp,
        max_exp=max_exp,
    )


class QuantizedBackprop(nn.Module):
    """Wraps a Linear/Conv layer so its weight gradient uses power-of-two-rounded inputs (Lin et al. 2016).

    Forward value and input gradient are exact; ``dL/dW`` is computed from ``pow2(x)`` instead of ``x``.
    """

    def __init__(self, layer: nn.Module, min_exp: int = -8, max_exp: int = 3) -> None:
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            raise CompressionError(f"QuantizedBackprop supports Linear/Conv layers, got {type(layer).__name__}.")
        self.layer = layer
        self.min_exp, self.max_exp = int(min_exp), int(max_exp)

    def _apply_layer(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, weight, bias)
        return self.layer._conv_forward(x, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.layer.weight
        bias = self.layer.bias
        if not torch.is_grad_enabled() or not weight.requires_grad:
            return self._apply_layer(x, weight, bias)
        xq = pow2_quantize(x.detach(), self.min_exp, self.max_exp)
        exact = self._apply_layer(x, weight.detach(), None if bias is None else bias.detach())
        grad_path = self._apply_layer(xq, weight, bias)
        return exact + grad_path - grad_path.detach()


def quantized_backprop(
    model: nn.Module,
    *,
    min_exp: int = -8,
    max_exp: int = 3,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Wrap the chosen layers in :class:`QuantizedBackprop` (power-of-two inputs in the weight gradient)."""
    model = maybe_copy(model, inplace)
    chosen = weight_layers(model, layers, what="quantized_backprop")
    edit = {"op": "quantized-backprop", "layers": [name for name, _ in chosen], "min_exp": min_exp, "max_exp": max_exp}
    return record_edit(replay_quantized_backprop(model, edit), **edit)


def replay_quantized_backprop(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Wrap the layers a ``"quantized-backprop"`` edit names in :class:`QuantizedBackprop`, in place."""
    for name in edit["layers"]:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, QuantizedBackprop(getattr(parent, child), edit["min_exp"], edit["max_exp"]))
    return model
