"""LeNet-5 as in the Caffe MNIST example (the variant pruned in Han et al. 2015)."""

from __future__ import annotations

from torch import Tensor, nn

from workbench.errors import ConfigError
from workbench.zoo import register_model
from workbench.zoo.models._common import check_int, kaiming_init_


def _lenet5_feature_size(input_size: int, padding: int) -> int:
    """Side of the feature map after conv5 -> pool2 -> conv5 -> pool2 (0 when the input is too small)."""
    size = input_size + 2 * padding - 4
    size = size // 2 + 2 * padding - 4
    return max(size // 2, 0)


class LeNet5(nn.Module):
    """Caffe LeNet-5: conv 20@5x5, maxpool 2, conv 50@5x5, maxpool 2, fc 500, ReLU, fc classes.

    As in Caffe there is no nonlinearity after the convolutions. 431,080 parameters for 1x28x28
    input and 10 classes.
    """

    def __init__(self, in_channels: int, input_size: int, classes: int, padding: int) -> None:
        super().__init__()
        self.input_shape = (in_channels, input_size, input_size)
        self.task = "classification"
        self.num_classes = classes
        self.padding = padding
        side = _lenet5_feature_size(input_size, padding)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, kernel_size=5, padding=padding),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(20, 50, kernel_size=5, padding=padding),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(50 * side * side, 500),
            nn.ReLU(),
            nn.Linear(500, classes),
        )
        kaiming_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model("lenet5", description="LeNet-5, Caffe variant: conv20-pool-conv50-pool-fc500-fc (431k params)")
def lenet5(in_channels: int = 1, input_size: int = 28, classes: int = 10, padding: int | None = None) -> LeNet5:
    """Caffe LeNet-5 for square inputs of side ``input_size``.

    ``padding`` is the zero-padding of both convolutions. ``None`` (default) chooses 0 -- the
    original network -- when ``input_size >= 16``, and 2 ("same" convolutions) for smaller inputs such
    as the 8x8 scikit-learn digits (features 50x2x2). The flattened size is computed from
    ``input_size`` and ``padding``.
    """
    in_channels = check_int("lenet5", "in_channels", in_channels)
    input_size = check_int("lenet5", "input_size", input_size)
    classes = check_int("lenet5", "classes", classes)
    if padding is None:
        padding = 0 if input_size >= 16 else 2
    padding = check_int("lenet5", "padding", padding, minimum=0)
    if _lenet5_feature_size(input_size, padding) < 1:
        raise ConfigError(
            f"lenet5: input_size={input_size} with padding={padding} leaves no features after the two "
            "5x5 convolutions and 2x2 poolings; use a larger input_size or padding (2 keeps the size)."
        )
    return LeNet5(in_channels, input_size, classes, padding)
