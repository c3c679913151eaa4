"""Multilayer perceptrons: a general ``mlp`` and LeNet-300-100 (LeCun et al. 1998)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from workbench.errors import ConfigError
from workbench.zoo import register_model
from workbench.zoo.models._common import check_int, check_probability, kaiming_init_

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
}


class MLP(nn.Module):
    """Fully connected network ``Flatten -> (Linear -> act [-> Dropout]) * k -> Linear``.

    Parameters
    ----------
    widths
        ``[inputs, hidden..., outputs]``; at least two entries.
    activation
        Name of the hidden activation (see :data:`ACTIVATIONS`).
    dropout
        Dropout probability after each hidden activation (no dropout module when 0).

    The input may have any shape whose per-sample size is ``widths[0]`` (an image is flattened).
    """

    def __init__(self, widths: Sequence[int], activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        self.input_shape = (widths[0],)
        self.task = "classification"
        self.num_classes = widths[-1]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        kaiming_init_(self, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def _checked_mlp(model: str, widths: object, activation: object, dropout: object) -> MLP:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) < 2:
        raise ConfigError(
            f"{model}: widths must be a list [inputs, hidden..., outputs] with at least 2 entries, got {widths!r}."
        )
    widths = [check_int(model, f"widths[{i}]", w) for i, w in enumerate(widths)]
    if activation not in ACTIVATIONS:
        raise ConfigError(f"{model}: unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    return MLP(widths, str(activation), check_probability(model, "dropout", dropout))


@register_model("mlp", description="fully connected network: widths=[inputs, hidden..., outputs]")
def mlp(widths: Sequence[int], activation: str = "relu", dropout: float = 0.0) -> MLP:
    """Fully connected network with ``widths=[inputs, hidden..., outputs]``."""
    return _checked_mlp("mlp", widths, activation, dropout)


@register_model("lenet300", description="LeNet-300-100 MLP (LeCun et al. 1998): inputs-300-100-classes")
def lenet300(inputs: int = 784, classes: int = 10) -> MLP:
    """LeNet-300-100: ``inputs -> 300 -> 100 -> classes`` with ReLU (266,610 parameters on MNIST).

    ``inputs=64`` fits the scikit-learn digits, ``inputs=40`` MNIST-1D.
    """
    inputs = check_int("lenet300", "inputs", inputs)
    classes = check_int("lenet300", "classes", classes)
    return _checked_mlp("lenet300", [inputs, 300, 100, classes], "relu", 0.0)
