"""Argument checks and weight initialisation shared by the built-in models."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from workbench.errors import ConfigError
from workbench.numeric import as_float, as_int

# Gains understood by ``nn.init.kaiming_normal_`` for each activation name the models accept.
_KAIMING_NONLINEARITY = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "gelu": "relu",
    "elu": "relu",
    "identity": "linear",
}


def check_int(model: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``; ConfigError naming ``model`` and ``name`` otherwise."""
    return as_int(value, f"{model}: {name}", low=minimum)


#: Largest width multiplier a model accepts: far beyond any memory, but small enough that channel counts stay
#: 64-bit integers (a larger one fails inside torch instead of being refused here).
MAX_MULTIPLIER = 2.0**20


def check_positive(model: str, name: str, value: object, maximum: float = MAX_MULTIPLIER) -> float:
    """``value`` as a finite float in ``(0, maximum]``; ConfigError otherwise."""
    return as_float(value, f"{model}: {name}", low=0.0, high=maximum, low_open=True)


def check_probability(model: str, name: str, value: object) -> float:
    """``value`` as a float in ``[0, 1)``; ConfigError otherwise."""
    return as_float(value, f"{model}: {name}", low=0.0, high=1.0, high_open=True, what="a probability")


def check_size2d(model: str, name: str, value: object) -> tuple[int, int]:
    """An image size given as ``n`` or ``(height, width)``, as a pair of positive ints."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ConfigError(f"{model}: {name} must be an int or a (height, width) pair, got {value!r}.")
        return check_int(model, f"{name}[0]", value[0]), check_int(model, f"{name}[1]", value[1])
    size = check_int(model, name, value)
    return size, size


#: Attribute that marks a layer a built-in model starts at zero in every initialization scheme (ENet's encoder class
#: scores): :func:`kaiming_init_` and :func:`init_weights_` leave it zero, so a network re-initialized afresh (a
#: scratch-trained control, another ``training.init``) starts as the model's constructor starts it. Surgery edits
#: layers in place, so the mark survives a rebuild.
ZERO_START = "zero_start"


def zero_start_(layer: nn.Module) -> nn.Module:
    """Zero ``layer``'s weight and bias, mark it :data:`ZERO_START` and return it."""
    for param in (getattr(layer, "weight", None), getattr(layer, "bias", None)):
        if param is not None:
            nn.init.zeros_(param)
    setattr(layer, ZERO_START, True)
    return layer


def _zero_started(module: nn.Module) -> None:
    for sub in module.modules():
        if getattr(sub, ZERO_START, False):
            zero_start_(sub)


def kaiming_init_(module: nn.Module, nonlinearity: str = "relu") -> nn.Module:
    """Initialise ``module`` in place (He et al. 2015) and return it.

    Convolutions (also transposed) get ``kaiming_normal_`` with ``mode="fan_out"``, linear layers
    ``kaiming_normal_`` with ``mode="fan_in"``, biases zero, batch-norm scale one and shift zero; layers marked
    :data:`ZERO_START` zero. Deterministic given ``torch.manual_seed``.
    """
    gain = _KAIMING_NONLINEARITY.get(nonlinearity, "relu")
    for sub in module.modules():
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(sub.weight, mode="fan_out", nonlinearity=gain)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Linear):
            nn.init.kaiming_normal_(sub.weight, mode="fan_in", nonlinearity=gain)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
    _zero_started(module)
    return module


#: Initialization schemes a base model can be trained from (a study axis: ``training.init``).
INIT_SCHEMES = ("kaiming", "torch", "xavier", "orthogonal")


def init_weights_(module: nn.Module, scheme: str = "kaiming", nonlinearity: str = "relu") -> nn.Module:
    """Re-initialise ``module`` in place with ``scheme`` and return it.

    ``"kaiming"`` is :func:`kaiming_init_` (the zoo's default); ``"torch"`` each layer's own
    ``reset_parameters`` (PyTorch's default: uniform, scaled by fan-in); ``"xavier"`` Glorot-uniform weights and
    ``"orthogonal"`` orthogonal weights (Saxe et al. 2014), both with zero biases. Batch norm starts at scale one,
    shift zero in every scheme, and layers marked :data:`ZERO_START` at zero. Deterministic given
    ``torch.manual_seed``.
    """
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"unknown initialization {scheme!r}; use one of {', '.join(INIT_SCHEMES)}.")
    if scheme == "kaiming":
        return kaiming_init_(module, nonlinearity)
    _reinit(module, scheme)
    _zero_started(module)
    return module


def _reinit(module: nn.Module, scheme: str) -> None:
    for sub in module.modules():
        if isinstance(sub, (nn.BatchNorm1d, nn.BatchNorm2d)):
            sub.reset_parameters()
        elif isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if scheme == "torch":
                sub.reset_parameters()
                continue
            (nn.init.xavier_uniform_ if scheme == "xavier" else nn.init.orthogonal_)(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
