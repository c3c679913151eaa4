"""MobileNet v1 (Howard et al. 2017) with width (alpha) and resolution multipliers."""

from __future__ import annotations

from torch import Tensor, nn

from workbench.zoo import register_model
from workbench.zoo.models._common import check_int, check_positive, kaiming_init_

#: (output channels, stride) of the 13 depthwise-separable blocks. The paper's table lists stride 2
#: for the last block, a known misprint: the reference implementation (and the 7x7 output) uses 1.
MOBILENET_V1_BLOCKS: list[tuple[int, int]] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
]
MIN_DEPTH = 8


def scaled_channels(channels: int, width: float) -> int:
    """``max(int(channels * width), 8)``: the channel rounding of the TensorFlow reference (``min_depth=8``)."""
    return max(int(channels * width), MIN_DEPTH)


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 conv -> BN -> ReLU, pointwise 1x1 conv -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False)
        self.dw_bn = nn.BatchNorm2d(in_channels)
        self.dw_relu = nn.ReLU()
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(out_channels)
        self.pw_relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.dw_relu(self.dw_bn(self.dw(x)))
        return self.pw_relu(self.pw_bn(self.pw(x)))


class MobileNetV1(nn.Module):
    """Conv 3x3 stride 2, 13 depthwise-separable blocks, global average pooling, fully connected."""

    def __init__(self, width: float, resolution: int, classes: int, in_channels: int) -> None:
        super().__init__()
        self.input_shape = (in_channels, resolution, resolution)
        self.task = "classification"
        self.num_classes = classes
        self.width = width
        channels = scaled_channels(32, width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        blocks = []
        for out_channels, stride in MOBILENET_V1_BLOCKS:
            out_channels = scaled_channels(out_channels, width)
            blocks.append(DepthwiseSeparable(channels, out_channels, stride))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, classes)
        kaiming_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.pool(self.blocks(self.stem(x)))))


@register_model("mobilenet_v1", description="MobileNet v1 (Howard et al. 2017), width and resolution multipliers")
def mobilenet_v1(width: float = 1.0, resolution: int = 224, classes: int = 1000, in_channels: int = 3) -> MobileNetV1:
    """MobileNet v1 with width multiplier ``width`` (alpha) and input side ``resolution``.

    Channels are ``max(int(c * width), 8)`` as in the TensorFlow reference. With 1000 classes at 224:
    width 1.0 has 4,231,976 parameters (BatchNorm included) and 568.7M multiply-adds, width 0.5 has
    1,331,592 and 149.5M (published: 4.2M / 569M and 1.3M / 149M).
    """
    return MobileNetV1(
        check_positive("mobilenet_v1", "width", width),
        check_int("mobilenet_v1", "resolution", resolution),
        check_int("mobilenet_v1", "classes", classes),
        check_int("mobilenet_v1", "in_channels", in_channels),
    )
