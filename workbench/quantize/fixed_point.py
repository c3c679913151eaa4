"""Fixed-point (Q-format) weights and activations (Lin & Talathi 2016, "Overcoming challenges in fixed
point training of deep convolutional networks").

A value in Qm.n with ``bits = 1 + m + n`` (sign, integer, fraction bits) is ``k * 2**-n`` with integer
``k`` in ``[-2**(bits-1), 2**(bits-1) - 1]``. Weights are quantized in the forward pass (straight-through
gradient to the real weights); activations by :class:`ActivationQuantizer` modules inserted after each
activation module. :func:`iterative_fixed_point` is the paper's bottom-to-top fine-tuning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from workbench.edits import record_edit, restorable
from workbench.errors import CompressionError
from workbench.quantize.sharing import check_bits
from workbench.sparse.layers import attach, maybe_copy, per_layer, weight_layers
from workbench.utils import RandomState, seed_from

ROUNDINGS = ("nearest", "stochastic")
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.SiLU)


def choose_frac_bits(tensor: torch.Tensor, bits: int) -> int:
    """Fraction bits so that the largest magnitude of ``tensor`` fits ``bits`` (sign included)."""
    peak = float(tensor.detach().abs().max()) if tensor.numel() else 0.0
    if peak == 0.0:
        return bits - 1
    integer_bits = max(math.ceil(math.log2(peak * (1 + 1e-9))), -64)
    # k_max = 2**(bits-1) - 1 must cover peak * 2**n
    n = bits - 1 - integer_bits
    while n > -64 and peak * 2.0**n > 2 ** (bits - 1) - 1 + 0.5:
        n -= 1
    return n


def quantize_fixed(
    tensor: torch.Tensor,
    bits: int,
    frac_bits: int,
    rounding: str = "nearest",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Round ``tensor`` onto the Q-grid ``k * 2**-frac_bits`` with ``bits``-bit signed ``k`` (saturating).

    ``rounding="stochastic"`` rounds up with probability equal to the fractional part (unbiased inside
    the range).
    """
    if rounding not in ROUNDINGS:
        raise CompressionError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}.")
    scale = 2.0**frac_bits
    scaled = tensor * scale
    if rounding == "nearest":
        k = torch.round(scaled)
    else:
        noise = torch.rand(scaled.shape, generator=generator, dtype=scaled.dtype, device=scaled.device)
        k = torch.floor(scaled + noise)
    k = torch.clamp(k, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return k / scale


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return q.detach() + (x - x.detach())  # value exactly q, gradient straight through


@restorable("fixed-point")
class FixedPointWeight(nn.Module):
    """Parametrization of a layer's ``weight`` (or ``bias``, see ``tensor``): the forward pass uses the
    Q-format value, gradients reach the real one."""

    def __init__(
        self,
        bits: int,
        frac_bits: int,
        rounding: str = "nearest",
        random_state: RandomState = 0,
        tensor: str = "weight",
    ) -> None:
        super().__init__()
        self.bits, self.frac_bits, self.rounding = int(bits), int(frac_bits), rounding
        self.tensor = tensor
        self.seed = seed_from(random_state)
        self.generator = torch.Generator().manual_seed(self.seed) if rounding == "stochastic" else None

    def config(self) -> dict[str, Any]:
        """Constructor settings, for checkpoints."""
        return {
            "bits": self.bits,
            "frac_bits": self.frac_bits,
            "rounding": self.rounding,
            "tensor": self.tensor,
            "seed": self.seed,
        }

    @classmethod
    def placeholder(cls, config: dict[str, Any], shape: tuple[int, ...]) -> FixedPointWeight:
        """The parametrization ``config`` describes (it holds no tensors)."""
        return cls(config["bits"], config["frac_bits"], config["rounding"], config["seed"], config["tensor"])

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        rounding = self.rounding if self.training else "nearest"
        return _ste(weight, quantize_fixed(weight, self.bits, self.frac_bits, rounding, self.generator))

    def storage(self, module: nn.Module):
        """``bits`` per value plus the 8-bit fraction-length field."""
        from workbench.metrics.storage import WeightStorage

        w = getattr(module, self.tensor).detach()
        return WeightStorage(
            f"fixed Q{self.bits - 1 - self.frac_bits}.{self.frac_bits}",
            w.numel() * self.bits + 8,
            int((w != 0).sum()),
            {"bits": self.bits, "frac_bits": self.frac_bits},
        )


class ActivationQuantizer(nn.Module):
    """Quantizes activations to ``bits``-bit fixed point (fraction bits calibrated on the first batch).

    Gradient: straight through inside the representable range, zero where the value saturated.
    """

    def __init__(
        self, bits: int, frac_bits: int | None = None, rounding: str = "nearest", random_state: RandomState = 0
    ) -> None:
        super().__init__()
        if rounding not in ROUNDINGS:
            raise CompressionError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}.")
        self.bits = int(bits)
        self.rounding = rounding
        self.register_buffer("frac", torch.tensor(-1000 if frac_bits is None else int(frac_bits)))
        self.generator = torch.Generator().manual_seed(seed_from(random_state)) if rounding == "stochastic" else None

    @property
    def frac_bits(self) -> int | None:
        value = int(self.frac)
        return None if value == -1000 else value

    def calibrate(self, x: torch.Tensor) -> None:
        """Choose the fraction bits from the range of ``x``."""
        self.frac.fill_(choose_frac_bits(x, self.bits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frac_bits is None:
            self.calibrate(x)
        n = self.frac_bits
        rounding = self.rounding if self.training else "nearest"
        q = quantize_fixed(x, self.bits, n, rounding, self.generator)
        limit = (2 ** (self.bits - 1) - 1) / 2.0**n
        inside = (x.abs() <= limit).to(x.dtype)
        return q.detach() + (x - x.detach()) * inside

    def extra_repr(self) -> str:
        return f"bits={self.bits}, frac_bits={self.frac_bits}, rounding={self.rounding!r}"


def quantize_layer_weight(module: nn.Module, name: str, bits: int, frac_bits: int | None, rounding: str, rng) -> None:
    """Attach a :class:`FixedPointWeight` to one layer (fraction bits from its range when None)."""
    b = check_bits(bits, name, "weight_bits", 2, 32)
    n = choose_frac_bits(module.weight, b) if frac_bits is None else int(frac_bits)
    attach(module, FixedPointWeight(b, n, rounding, random_state=rng))


def fixed_point_biases(
    model: nn.Module,
    bits: int | dict = 8,
    *,
    layers: Iterable[str] | None = None,
    rounding: str = "nearest",
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """Q-format biases (fraction bits from each bias's range) for all (or the named) layers with a bias.

    Biases are few, but at fp32 they are a visible share of a model whose weights are coded in a few
    bits; ``workbench.metrics.storage_report`` counts a quantized bias at ``bits`` per value.
    """
    if rounding not in ROUNDINGS:
        raise CompressionError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}.")
    model = maybe_copy(model, inplace)
    for name, module in weight_layers(model, layers, what="fixed-point biases"):
        if getattr(module, "bias", None) is None:
            continue
        b = check_bits(per_layer(bits, name, module, "bias_bits"), name, "bias_bits", 2, 32)
        n = choose_frac_bits(module.bias, b)
        attach(module, FixedPointWeight(b, n, rounding, random_state=random_state, tensor="bias"), name="bias")
    return record_edit(model, "fixed-point-biases", bits=bits, layers=None if layers is None else list(layers))


def insert_activation_quantizers(
    model: nn.Module, bits: int, frac_bits: int | None = None, rounding: str = "nearest", random_state: RandomState = 0
) -> list[str]:
    """Wrap every activation module as ``Sequential(activation, ActivationQuantizer)``; returns their names."""
    b = check_bits(bits, "<activations>", "act_bits", 2, 32)
    names = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, ACTIVATIONS):
                names.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    if not names:
        raise CompressionError(
            f"act_bits was given but {type(model).__name__} has no activation modules "
            f"({', '.join(t.__name__ for t in ACTIVATIONS)}) to quantize after; use act_bits=None."
        )
    edit = {
        "op": "activation-quantizers",
        "names": names,
        "bits": b,
        "frac_bits": frac_bits,
        "rounding": rounding,
        "seed": seed_from(random_state),
    }
    replay_activation_quantizers(model, edit)
    record_edit(model, **edit)
    return names


def replay_activation_quantizers(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Wrap the activations an ``"activation-quantizers"`` edit names as ``Sequential(activation,
    ActivationQuantizer)``, in place (their calibrated fraction bits are buffers, loaded with the weights)."""
    for name in edit["names"]:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        quantizer = ActivationQuantizer(edit["bits"], edit["frac_bits"], edit["rounding"], edit["seed"])
        setattr(parent, child_name, nn.Sequential(getattr(parent, child_name), quantizer))
    return model


def fixed_point(
    model: nn.Module,
    weight_bits: int | dict = 8,
    act_bits: int | None = 8,
    *,
    frac_bits: int | dict | None = None,
    act_frac_bits: int | None = None,
    rounding: str = "nearest",
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """Q-format weights (and activations, if ``act_bits``) for all (or the named) layers.

    ``frac_bits=None`` chooses each layer's fraction bits from the range of its weights; activation
    fraction bits are calibrated on the first batch the model sees unless ``act_frac_bits`` is given.
    """
    if rounding not in ROUNDINGS:
        raise CompressionError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}.")
    model = maybe_copy(model, inplace)
    for name, module in weight_layers(model, layers, what="fixed point"):
        bits = per_layer(weight_bits, name, module, "weight_bits")
        n = per_layer(frac_bits, name, module, "frac_bits") if frac_bits is not None else None
        quantize_layer_weight(module, name, bits, n, rounding, random_state)
    record_edit(
        model,
        "fixed-point",
        weight_bits=weight_bits,
        frac_bits=frac_bits,
        rounding=rounding,
        layers=None if layers is None else list(layers),
    )
    if act_bits is not None:
        insert_activation_quantizers(model, act_bits, act_frac_bits, rounding, random_state)
    return model


def iterative_fixed_point(
    model: nn.Module,
    train_data: Any,
    weight_bits: int = 8,
    act_bits: int | None = 8,
    *,
    epochs_per_layer: int = 1,
    rounding: str = "nearest",
    inplace: bool = False,
    random_state: RandomState = 0,
    **fit_kwargs: Any,
) -> nn.Module:
    """Bottom-to-top fine-tuning (Lin & Talathi): quantize layer 1, fine-tune the layers above it, then
    quantize layer 2, and so on. Quantized layers are frozen. ``fit_kwargs`` go to ``workbench.train.fit``.
    """
    from workbench.train import fit

    model = maybe_copy(model, inplace)
    if act_bits is not None:
        insert_activation_quantizers(model, act_bits, None, rounding, random_state)
    chosen = weight_layers(model, None, what="fixed point")
    for i, (name, module) in enumerate(chosen):
        quantize_layer_weight(module, name, weight_bits, None, rounding, random_state)
        for p in module.parameters():
            p.requires_grad_(False)
        if i + 1 < len(chosen) and epochs_per_layer > 0:
            fit(model, train_data, epochs=epochs_per_layer, random_state=seed_from(random_state) + i, **fit_kwargs)
    for p in model.parameters():
        p.requires_grad_(True)
    return record_edit(model, "fixed-point", weight_bits=weight_bits, rounding=rounding, iterative=True)
