"""A small 1-D CNN for MNIST-1D, in the style of the CNN of Greydanus (2020)."""

from __future__ import annotations

from torch import Tensor, nn

from workbench.errors import ConfigError
from workbench.zoo import register_model
from workbench.zoo.models._common import check_int, kaiming_init_

_KERNEL, _STRIDE, _PADDING = 5, 2, 1


def _conv_length(length: int) -> int:
    return (length + 2 * _PADDING - _KERNEL) // _STRIDE + 1


class CNN1d(nn.Module):
    """Three ``Conv1d(kernel 5, stride 2, padding 1) -> ReLU`` layers, then ``Linear`` to the classes.

    Input ``(N, 1, length)``; with ``length=40`` the last feature map is ``channels x 4``.
    """

    def __init__(self, length: int, channels: int, classes: int, in_channels: int = 1) -> None:
        super().__init__()
        self.input_shape = (in_channels, length)
        self.task = "classification"
        self.num_classes = classes
        layers: list[nn.Module] = []
        size, fan_in = length, in_channels
        for _ in range(3):
            layers += [nn.Conv1d(fan_in, channels, _KERNEL, stride=_STRIDE, padding=_PADDING), nn.ReLU()]
            size, fan_in = _conv_length(size), channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels * size, classes))
        kaiming_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model("cnn1d", description="1-D CNN for MNIST-1D: 3 x Conv1d(k5, s2) + ReLU, then Linear")
def cnn1d(length: int = 40, channels: int = 25, classes: int = 10, in_channels: int = 1) -> CNN1d:
    """1-D CNN for sequences of ``length`` samples (MNIST-1D: 40), 7,460 parameters by default."""
    length = check_int("cnn1d", "length", length)
    channels = check_int("cnn1d", "channels", channels)
    classes = check_int("cnn1d", "classes", classes)
    in_channels = check_int("cnn1d", "in_channels", in_channels)
    if _conv_length(_conv_length(_conv_length(length))) < 1:
        raise ConfigError(f"cnn1d: length={length} is too short for three stride-2 convolutions; use length >= 15.")
    return CNN1d(length, channels, classes, in_channels)
