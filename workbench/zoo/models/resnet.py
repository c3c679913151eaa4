"""CIFAR-style residual networks (He et al. 2016, section 4.2) with projection shortcuts."""

from __future__ import annotations

from torch import Tensor, nn

from workbench.errors import ConfigError
from workbench.zoo import register_model
from workbench.zoo.models._common import check_int, check_positive, kaiming_init_


class BasicBlock(nn.Module):
    """``conv3x3 -> BN -> ReLU -> conv3x3 -> BN``, plus the shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 convolution with BatchNorm (option B) where the stride or
    the width changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem, three stages of ``n`` basic blocks (widths ``16, 32, 64`` times ``width``), GAP, FC."""

    def __init__(self, depth: int, in_channels: int, input_size: int, classes: int, width: float) -> None:
        super().__init__()
        self.input_shape = (in_channels, input_size, input_size)
        self.task = "classification"
        self.num_classes = classes
        self.depth = depth
        blocks = (depth - 2) // 6
        widths = [max(1, round(base * width)) for base in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages = []
        channels = widths[0]
        for stage, out_channels in enumerate(widths):
            layers = []
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, classes)
        kaiming_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


@register_model("resnet", description="CIFAR ResNet-(6n+2) (He et al. 2016) with 1x1-conv projection shortcuts")
def resnet(
    depth: int = 20, in_channels: int = 3, input_size: int = 32, classes: int = 10, width: float = 1.0
) -> CifarResNet:
    """CIFAR ResNet of ``depth = 6n + 2`` layers (20, 32, 44, 56, 110, ...), widths ``16/32/64 * width``.

    Shortcuts that change shape are 1x1 convolutions with BatchNorm (option B), so every part of the
    residual structure is a plain module; ResNet-20 then has 272,474 parameters with 10 classes
    (0.27M as published for the parameter-free option A, plus 2,752 for the two projections).
    """
    depth = check_int("resnet", "depth", depth, minimum=8)
    if (depth - 2) % 6:
        raise ConfigError(f"resnet: depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}.")
    width = check_positive("resnet", "width", width)
    return CifarResNet(
        depth,
        check_int("resnet", "in_channels", in_channels),
        check_int("resnet", "input_size", input_size),
        check_int("resnet", "classes", classes),
        width,
    )
