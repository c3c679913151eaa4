"""CIFAR-style networks written the way other projects publish them (not the workbench zoo).

Each class follows the code people copy from public repositories (kuangliu/pytorch-cifar, akamaster's
ResNet-56, timm-like ViTs, Kim's text CNN, ...): plain ``nn.Module`` classes with their idioms left in
(``forward(x, return_features=False)``, ``hasattr`` shortcuts, ``x.size()`` unpacking, ``expand_as``,
a lambda shortcut with ``F.pad`` on a strided slice, shape-dependent branches, a class token used as a
raw ``nn.Parameter``, a Linear called twice). Widths are small so that one forward pass on a
(2, 3, 32, 32) batch takes a few milliseconds on a CPU.

``PUBLISHED`` maps a name to a builder (weights are deterministic: each builder seeds torch first);
``example_input(name)`` gives a batch of two inputs (token ids for the text CNN).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# -- ResNet-18 (kuangliu/pytorch-cifar) ---------------------------------------------------------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for s in strides:
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x, return_features=False):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.avg_pool2d(out, 4)
        features = out.view(out.size(0), -1)
        out = self.linear(features)
        if return_features:
            return out, features
        return out


def resnet18() -> nn.Module:
    return ResNet(BasicBlock, [2, 2, 2, 2], width=8)


# -- ResNet-56, option A shortcut (akamaster/pytorch_resnet_cifar10) ----------------------------------


class LambdaLayer(nn.Module):
    def __init__(self, lambd) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class CifarBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            # option A: identity on a strided slice, the new channels zero-padded
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class CifarResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.linear = nn.Linear(4 * width, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for s in strides:
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def resnet56() -> nn.Module:
    return CifarResNet(CifarBasicBlock, [9, 9, 9], width=8)


# -- VGG-16-BN (kuangliu/pytorch-cifar) ---------------------------------------------------------------

VGG16_CFG = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]


class VGG(nn.Module):
    def __init__(self, cfg, num_classes: int = 10) -> None:
        super().__init__()
        self.features = self._make_layers(cfg)
        self.classifier = nn.Linear(cfg[-2], num_classes)

    def forward(self, x, return_features=False):
        out = self.features(x)
        features = out.view(out.size(0), -1)
        out = self.classifier(features)
        if return_features:
            return out, features
        return out

    def _make_layers(self, cfg):
        layers = []
        in_channels = 3
        for x in cfg:
            if x == "M":
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
            else:
                layers += [
                    nn.Conv2d(in_channels, x, kernel_size=3, padding=1),
                    nn.BatchNorm2d(x),
                    nn.ReLU(inplace=True),
                ]
                in_channels = x
        layers += [nn.AvgPool2d(kernel_size=1, stride=1)]
        return nn.Sequential(*layers)


def vgg16_bn() -> nn.Module:
    return VGG(VGG16_CFG)


VGG19_CFG = [8, 8, "M", 16, 16, "M", 32, 32, 32, 32, "M", 64, 64, 64, 64, "M", 64, 64, 64, 64, "M"]


def vgg19_bn() -> nn.Module:
    return VGG(VGG19_CFG)


# -- PreAct-ResNet-18 (kuangliu/pytorch-cifar) --------------------------------------------------------


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False)
            )

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], stride=2)
        self.bn = nn.BatchNorm2d(8 * width * block.expansion)
        self.linear = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for s in strides:
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def preact_resnet18() -> nn.Module:
    return PreActResNet(PreActBlock, [2, 2, 2, 2], width=8)


# -- MobileNetV2 (kuangliu/pytorch-cifar) -------------------------------------------------------------


class InvertedResidual(nn.Module):
    """expand + depthwise + pointwise"""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        planes = expansion * in_planes
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 1 and in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + self.shortcut(x) if self.stride == 1 else out
        return out


class MobileNetV2(nn.Module):
    # (expansion, out_planes, num_blocks, stride); the paper's widths divided by 4, CIFAR strides
    cfg = [(1, 4, 1, 1), (6, 6, 2, 1), (6, 8, 3, 2), (6, 16, 4, 2), (6, 24, 3, 1), (6, 40, 3, 2), (6, 80, 1, 1)]

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layers = self._make_layers(in_planes=8)
        self.conv2 = nn.Conv2d(80, 320, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(320)
        self.linear = nn.Linear(320, num_classes)

    def _make_layers(self, in_planes):
        layers = []
        for expansion, out_planes, num_blocks, stride in self.cfg:
            strides = [stride] + [1] * (num_blocks - 1)
            for s in strides:
                layers.append(InvertedResidual(in_planes, out_planes, expansion, s))
                in_planes = out_planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def mobilenet_v2() -> nn.Module:
    return MobileNetV2()


# -- DenseNet-121 (kuangliu/pytorch-cifar), growth rate 4 ---------------------------------------------


class DenseBottleneck(nn.Module):
    def __init__(self, in_planes: int, growth_rate: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = torch.cat([out, x], 1)
        return out


class Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x):
        out = self.conv(F.relu(self.bn(x)))
        out = F.avg_pool2d(out, 2)
        return out


class DenseNet(nn.Module):
    def __init__(self, block, nblocks, growth_rate: int = 4, reduction: float = 0.5, num_classes: int = 10) -> None:
        super().__init__()
        self.growth_rate = growth_rate
        num_planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, num_planes, kernel_size=3, padding=1, bias=False)

        self.dense1 = self._make_dense_layers(block, num_planes, nblocks[0])
        num_planes += nblocks[0] * growth_rate
        out_planes = int(num_planes * reduction)
        self.trans1 = Transition(num_planes, out_planes)
        num_planes = out_planes

        self.dense2 = self._make_dense_layers(block, num_planes, nblocks[1])
        num_planes += nblocks[1] * growth_rate
        out_planes = int(num_planes * reduction)
        self.trans2 = Transition(num_planes, out_planes)
        num_planes = out_planes

        self.dense3 = self._make_dense_layers(block, num_planes, nblocks[2])
        num_planes += nblocks[2] * growth_rate
        out_planes = int(num_planes * reduction)
        self.trans3 = Transition(num_planes, out_planes)
        num_planes = out_planes

        self.dense4 = self._make_dense_layers(block, num_planes, nblocks[3])
        num_planes += nblocks[3] * growth_rate

        self.bn = nn.BatchNorm2d(num_planes)
        self.linear = nn.Linear(num_planes, num_classes)

    def _make_dense_layers(self, block, in_planes, nblock):
        layers = []
        for _ in range(nblock):
            layers.append(block(in_planes, self.growth_rate))
            in_planes += self.growth_rate
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = self.dense4(out)
        out = F.avg_pool2d(F.relu(self.bn(out)), 4)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def densenet121() -> nn.Module:
    return DenseNet(DenseBottleneck, [6, 12, 24, 16], growth_rate=4)


# -- GoogLeNet (kuangliu/pytorch-cifar), widths divided by 8 ------------------------------------------


class Inception(nn.Module):
    def __init__(self, in_planes, n1x1, n3x3red, n3x3, n5x5red, n5x5, pool_planes) -> None:
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(in_planes, n1x1, kernel_size=1), nn.BatchNorm2d(n1x1), nn.ReLU(True))
        self.b2 = nn.Sequential(
            nn.Conv2d(in_planes, n3x3red, kernel_size=1),
            nn.BatchNorm2d(n3x3red),
            nn.ReLU(True),
            nn.Conv2d(n3x3red, n3x3, kernel_size=3, padding=1),
            nn.BatchNorm2d(n3x3),
            nn.ReLU(True),
        )
        self.b3 = nn.Sequential(
            nn.Conv2d(in_planes, n5x5red, kernel_size=1),
            nn.BatchNorm2d(n5x5red),
            nn.ReLU(True),
            nn.Conv2d(n5x5red, n5x5, kernel_size=3, padding=1),
            nn.BatchNorm2d(n5x5),
            nn.ReLU(True),
            nn.Conv2d(n5x5, n5x5, kernel_size=3, padding=1),
            nn.BatchNorm2d(n5x5),
            nn.ReLU(True),
        )
        self.b4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(in_planes, pool_planes, kernel_size=1),
            nn.BatchNorm2d(pool_planes),
            nn.ReLU(True),
        )

    def forward(self, x):
        y1 = self.b1(x)
        y2 = self.b2(x)
        y3 = self.b3(x)
        y4 = self.b4(x)
        return torch.cat([y1, y2, y3, y4], 1)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.pre_layers = nn.Sequential(nn.Conv2d(3, 24, kernel_size=3, padding=1), nn.BatchNorm2d(24), nn.ReLU(True))
        self.a3 = Inception(24, 8, 12, 16, 2, 4, 4)
        self.b3 = Inception(32, 16, 16, 24, 4, 12, 8)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.a4 = Inception(60, 24, 12, 26, 2, 6, 8)
        self.b4 = Inception(64, 20, 14, 28, 3, 8, 8)
        self.c4 = Inception(64, 16, 16, 32, 3, 8, 8)
        self.d4 = Inception(64, 14, 18, 36, 4, 8, 8)
        self.e4 = Inception(66, 32, 20, 40, 4, 16, 16)
        self.a5 = Inception(104, 32, 20, 40, 4, 16, 16)
        self.b5 = Inception(104, 48, 24, 48, 6, 16, 16)
        self.avgpool = nn.AvgPool2d(8, stride=1)
        self.linear = nn.Linear(128, num_classes)

    def forward(self, x):
        out = self.pre_layers(x)
        out = self.a3(out)
        out = self.b3(out)
        out = self.maxpool(out)
        out = self.a4(out)
        out = self.b4(out)
        out = self.c4(out)
        out = self.d4(out)
        out = self.e4(out)
        out = self.maxpool(out)
        out = self.a5(out)
        out = self.b5(out)
        out = self.avgpool(out)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def googlenet() -> nn.Module:
    return GoogLeNet()


# -- ResNeXt-29 (kuangliu/pytorch-cifar), cardinality 8 -----------------------------------------------


class ResNeXtBlock(nn.Module):
    """Grouped convolution block."""

    expansion = 2

    def __init__(self, in_planes, cardinality=32, bottleneck_width=4, stride=1) -> None:
        super().__init__()
        group_width = cardinality * bottleneck_width
        self.conv1 = nn.Conv2d(in_planes, group_width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(group_width)
        self.conv2 = nn.Conv2d(
            group_width, group_width, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm2d(group_width)
        self.conv3 = nn.Conv2d(group_width, self.expansion * group_width, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * group_width)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * group_width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * group_width, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * group_width),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNeXt(nn.Module):
    def __init__(self, num_blocks, cardinality, bottleneck_width, num_classes: int = 10) -> None:
        super().__init__()
        self.cardinality = cardinality
        self.bottleneck_width = bottleneck_width
        self.in_planes = 16

        self.conv1 = nn.Conv2d(3, 16, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(num_blocks[0], 1)
        self.layer2 = self._make_layer(num_blocks[1], 2)
        self.layer3 = self._make_layer(num_blocks[2], 2)
        self.linear = nn.Linear(cardinality * bottleneck_width * 8, num_classes)

    def _make_layer(self, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for s in strides:
            layers.append(ResNeXtBlock(self.in_planes, self.cardinality, self.bottleneck_width, s))
            self.in_planes = ResNeXtBlock.expansion * self.cardinality * self.bottleneck_width
        # increase bottleneck_width by 2 after each stage
        self.bottleneck_width *= 2
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, 8)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def resnext29() -> nn.Module:
    return ResNeXt(num_blocks=[3, 3, 3], cardinality=8, bottleneck_width=2)


# -- SE-ResNet-20 (moskomule/senet.pytorch style) -----------------------------------------------------


class SELayer(nn.Module):
    def __init__(self, channel: int, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SEBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, reduction: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SELayer(planes, reduction)
        if inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        else:
            self.downsample = lambda x: x
        self.stride = stride

    def forward(self, x):
        residual = self.downsample(x)
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.se(out)
        out += residual
        out = self.relu(out)
        return out


class CifarSEResNet(nn.Module):
    def __init__(self, n_size: int = 3, num_classes: int = 10, reduction: int = 4, width: int = 8) -> None:
        super().__init__()
        self.inplane = width
        self.conv1 = nn.Conv2d(3, self.inplane, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplane)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(width, n_size, stride=1, reduction=reduction)
        self.layer2 = self._make_layer(2 * width, n_size, stride=2, reduction=reduction)
        self.layer3 = self._make_layer(4 * width, n_size, stride=2, reduction=reduction)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def _make_layer(self, planes, blocks, stride, reduction):
        strides = [stride] + [1] * (blocks - 1)
        layers = []
        for s in strides:
            layers.append(SEBasicBlock(self.inplane, planes, s, reduction))
            self.inplane = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


def se_resnet20() -> nn.Module:
    return CifarSEResNet(n_size=3)


# -- SENet-18 (kuangliu/pytorch-cifar: squeeze with 1x1 convolutions, out * w) ------------------------


class SEPreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))
        # SE layers
        self.fc1 = nn.Conv2d(planes, planes // 4, kernel_size=1)
        self.fc2 = nn.Conv2d(planes // 4, planes, kernel_size=1)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        # squeeze
        w = F.avg_pool2d(out, out.size(2))
        w = F.relu(self.fc1(w))
        w = F.sigmoid(self.fc2(w))
        # excitation
        out = out * w
        out += shortcut
        return out


class SENet(nn.Module):
    def __init__(self, num_blocks, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(8 * width, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * width, num_classes)

    def _make_layer(self, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for s in strides:
            layers.append(SEPreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def senet18() -> nn.Module:
    return SENet([2, 2, 2, 2])


# -- Xception-style separable convolutions (tstandley/Xception-PyTorch, shortened) --------------------


class SeparableConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0, dilation=1, bias=False):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, in_channels, kernel_size, stride, padding, dilation, groups=in_channels, bias=bias
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, 1, 0, 1, 1, bias=bias)

    def forward(self, x):
        x = self.conv1(x)
        x = self.pointwise(x)
        return x


class XceptionBlock(nn.Module):
    def __init__(self, in_filters, out_filters, reps, strides=1, start_with_relu=True, grow_first=True):
        super().__init__()
        if out_filters != in_filters or strides != 1:
            self.skip = nn.Conv2d(in_filters, out_filters, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(out_filters)
        else:
            self.skip = None
        rep = []
        filters = in_filters
        if grow_first:
            rep.append(nn.ReLU(inplace=True))
            rep.append(SeparableConv2d(in_filters, out_filters, 3, stride=1, padding=1, bias=False))
            rep.append(nn.BatchNorm2d(out_filters))
            filters = out_filters
        for _ in range(reps - 1):
            rep.append(nn.ReLU(inplace=True))
            rep.append(SeparableConv2d(filters, filters, 3, stride=1, padding=1, bias=False))
            rep.append(nn.BatchNorm2d(filters))
        if not grow_first:
            rep.append(nn.ReLU(inplace=True))
            rep.append(SeparableConv2d(in_filters, out_filters, 3, stride=1, padding=1, bias=False))
            rep.append(nn.BatchNorm2d(out_filters))
        if not start_with_relu:
            rep = rep[1:]
        else:
            rep[0] = nn.ReLU(inplace=False)
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        if self.skip is not None:
            skip = self.skip(inp)
            skip = self.skipbn(skip)
        else:
            skip = inp
        x += skip
        return x


class Xception(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 16, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.block1 = XceptionBlock(16, 32, 2, 2, start_with_relu=False, grow_first=True)
        self.block2 = XceptionBlock(32, 64, 2, 2, start_with_relu=True, grow_first=True)
        self.block3 = XceptionBlock(64, 64, 3, 1, start_with_relu=True, grow_first=True)
        self.block4 = XceptionBlock(64, 96, 2, 2, start_with_relu=True, grow_first=False)
        self.conv3 = SeparableConv2d(96, 128, 3, 1, 1)
        self.bn3 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.block1(x)
        x = self.block2(x)
        x = self.block3(x)
        x = self.block4(x)
        x = self.relu(self.bn3(self.conv3(x)))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


def xception() -> nn.Module:
    return Xception()


# -- depthwise convolution with channel multiplier 2 (groups=in, out=2*in) ----------------------------


class DepthwiseMultiplierNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=16, bias=False)  # multiplier 2
        self.bn2 = nn.BatchNorm2d(32)
        self.pw = nn.Conv2d(32, 32, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(32)
        self.dw2 = nn.Conv2d(32, 64, 3, stride=2, padding=1, groups=32, bias=False)  # multiplier 2
        self.bn4 = nn.BatchNorm2d(64)
        self.pw2 = nn.Conv2d(64, 48, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(48)
        self.fc = nn.Linear(48, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.dw(x)))
        x = F.relu(self.bn3(self.pw(x)))
        x = F.relu(self.bn4(self.dw2(x)))
        x = F.relu(self.bn5(self.pw2(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def depthwise_multiplier() -> nn.Module:
    return DepthwiseMultiplierNet()


# -- NASNet-like cell branching on its input's shape (as in NASNet / PNASNet implementations) ---------


class SepConvBN(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, in_planes, kernel_size, stride, padding=kernel_size // 2, groups=in_planes, bias=False
        )
        self.conv2 = nn.Conv2d(in_planes, out_planes, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_planes)

    def forward(self, x):
        return self.bn(self.conv2(self.conv1(F.relu(x))))


class NASCell(nn.Module):
    """Two inputs: the previous cell (x) and the one before it (y), which may be larger."""

    def __init__(self, in_x: int, in_y: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.reduce_y = nn.Sequential(nn.Conv2d(in_y, in_y, 1, stride=2, bias=False), nn.BatchNorm2d(in_y))
        self.proj_x = nn.Sequential(nn.Conv2d(in_x, planes, 1, bias=False), nn.BatchNorm2d(planes))
        self.proj_y = nn.Sequential(nn.Conv2d(in_y, planes, 1, bias=False), nn.BatchNorm2d(planes))
        self.sep3 = SepConvBN(planes, planes, 3, stride)
        self.sep5 = SepConvBN(planes, planes, 5, stride)
        self.pool = nn.MaxPool2d(3, stride, padding=1)

    def forward(self, x, y):
        if x.size(2) != y.size(2):
            y = self.reduce_y(y)
        x = self.proj_x(x)
        y = self.proj_y(y)
        b1 = self.sep3(x) + self.pool(y)
        b2 = self.sep5(y) + self.pool(x)
        return torch.cat([b1, b2], 1)


class NASNetLike(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.cell1 = NASCell(16, 16, 8)  # out 16, same size
        self.cell2 = NASCell(16, 16, 16, stride=2)  # out 32, half size
        self.cell3 = NASCell(32, 16, 16)  # y (cell1's output) is larger: reduced
        self.linear = nn.Linear(32, num_classes)

    def forward(self, x):
        s0 = self.stem(x)
        s1 = self.cell1(s0, s0)
        s2 = self.cell2(s1, s0)
        s3 = self.cell3(s2, s1)
        out = F.adaptive_avg_pool2d(F.relu(s3), 1)
        out = out.view(out.size(0), -1)
        return self.linear(out)


def nasnet_like() -> nn.Module:
    return NASNetLike()


# -- a small ViT (patch embedding conv, class token Parameter, nn.MultiheadAttention) -----------------


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return x


class ViT(nn.Module):
    def __init__(self, image_size=32, patch_size=8, dim=32, depth=2, heads=4, num_classes=10) -> None:
        super().__init__()
        num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x)  # B, dim, H/p, W/p
        x = x.flatten(2).transpose(1, 2)  # B, N, dim
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        x = x + self.pos_embed
        x = self.blocks(x)
        x = self.norm(x)
        return self.head(x[:, 0])


def vit_tiny() -> nn.Module:
    return ViT()


# -- hand-written multi-head attention (timm-style Attention with separate q/k/v) ---------------------


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q = self.q(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class AttentionNet(nn.Module):
    """Conv stem to 8x8 tokens, one pre-norm-free attention block with an MLP, mean-pooled tokens."""

    def __init__(self, dim: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), nn.BatchNorm2d(dim), nn.ReLU())
        self.attn = Attention(dim, 4)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = x.flatten(2).transpose(1, 2)
        x = x + self.attn(x)
        x = x + self.fc2(F.relu(self.fc1(x)))
        return self.head(x.mean(dim=1))


def attention_net() -> nn.Module:
    return AttentionNet()


# -- GroupNorm ResNet-style net -----------------------------------------------------------------------


class GNBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1, groups: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.gn1 = nn.GroupNorm(groups, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.gn2 = nn.GroupNorm(groups, planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.GroupNorm(groups, planes)
            )

    def forward(self, x):
        out = F.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class GroupNormNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.gn1 = nn.GroupNorm(4, 16)
        self.layer1 = GNBlock(16, 16)
        self.layer2 = GNBlock(16, 32, 2)
        self.layer3 = GNBlock(32, 64, 2)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.gn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def groupnorm_net() -> nn.Module:
    return GroupNormNet()


# -- tied weights: one Linear used twice --------------------------------------------------------------


class TiedNet(nn.Module):
    """A conv feature extractor, then the same square Linear applied twice (a weight-tied MLP)."""

    def __init__(self, num_classes: int = 10, hidden: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 2, 1)
        self.fc_in = nn.Linear(16 * 8 * 8, hidden)
        self.shared = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.fc_in(x.flatten(1)))
        x = F.relu(self.shared(x))
        x = F.relu(self.shared(x))  # the same weights again
        return self.classifier(x)


def tied_weights() -> nn.Module:
    return TiedNet()


# -- small U-Net with ConvTranspose upsampling and skip concatenation ---------------------------------


def double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
        self.conv = double_conv(in_ch, out_ch)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels: int = 3, n_classes: int = 4, width: int = 8) -> None:
        super().__init__()
        self.inc = double_conv(n_channels, width)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), double_conv(width, 2 * width))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), double_conv(2 * width, 4 * width))
        self.up1 = Up(4 * width, 2 * width)
        self.up2 = Up(2 * width, width)
        self.outc = nn.Conv2d(width, n_classes, kernel_size=1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x = self.up1(x3, x2)
        x = self.up2(x, x1)
        return self.outc(x)


def unet_small() -> nn.Module:
    return UNet()


# -- text CNN (Kim 2014 style): Embedding, Conv1d, per-channel PReLU, max over time -------------------

VOCAB = 100
SEQ_LEN = 32


class TextCNN(nn.Module):
    def __init__(self, vocab_size: int = VOCAB, embed_dim: int = 16, num_filters: int = 8, num_classes: int = 4):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.convs = nn.ModuleList([nn.Conv1d(embed_dim, num_filters, k, padding=k // 2) for k in (3, 5)])
        self.act = nn.PReLU(num_filters * 2)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(num_filters * 2, num_classes)

    def forward(self, tokens):
        x = self.embedding(tokens)  # B, L, E
        x = x.permute(0, 2, 1)  # B, E, L
        x = torch.cat([conv(x) for conv in self.convs], 1)  # B, 2F, L
        x = self.act(x)
        x = torch.max(x, dim=2)[0]
        return self.fc(self.dropout(x))


def text_cnn() -> nn.Module:
    return TextCNN()


# -- registry -----------------------------------------------------------------------------------------


# -- Inception-v4 style (Szegedy et al. 2016, as CIFAR ports write it: BasicConv2d, factorized 1x7 / 7x1) ------


class BasicConv2d(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_planes, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class StemV4(nn.Module):
    """The stem's two concatenations: a strided conv beside a max-pool, and two conv branches."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = BasicConv2d(3, 8, kernel_size=3, padding=1)
        self.branch_pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.branch_conv = BasicConv2d(8, 8, kernel_size=3, stride=2, padding=1)
        self.left = nn.Sequential(BasicConv2d(16, 8, kernel_size=1), BasicConv2d(8, 12, kernel_size=3, padding=1))
        self.right = nn.Sequential(
            BasicConv2d(16, 8, kernel_size=1),
            BasicConv2d(8, 8, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(8, 8, kernel_size=(7, 1), padding=(3, 0)),
            BasicConv2d(8, 12, kernel_size=3, padding=1),
        )

    def forward(self, x):
        x = self.conv(x)
        x = torch.cat((self.branch_pool(x), self.branch_conv(x)), 1)
        return torch.cat((self.left(x), self.right(x)), 1)


class InceptionA(nn.Module):
    def __init__(self, in_planes: int) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_planes, 8, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_planes, 6, kernel_size=1), BasicConv2d(6, 8, kernel_size=3, padding=1)
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(in_planes, 6, kernel_size=1),
            BasicConv2d(6, 8, kernel_size=3, padding=1),
            BasicConv2d(8, 8, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), BasicConv2d(in_planes, 8, kernel_size=1)
        )

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class ReductionA(nn.Module):
    def __init__(self, in_planes: int) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_planes, 12, kernel_size=3, stride=2, padding=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_planes, 8, kernel_size=1),
            BasicConv2d(8, 10, kernel_size=3, padding=1),
            BasicConv2d(10, 12, kernel_size=3, stride=2, padding=1),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionB(nn.Module):
    def __init__(self, in_planes: int) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_planes, 16, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(in_planes, 8, kernel_size=1),
            BasicConv2d(8, 10, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(10, 12, kernel_size=(7, 1), padding=(3, 0)),
        )
        self.branch2 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), BasicConv2d(in_planes, 8, kernel_size=1)
        )

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionV4(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            StemV4(), InceptionA(24), InceptionA(32), ReductionA(32), InceptionB(56), InceptionB(36)
        )
        self.last_linear = nn.Linear(36, num_classes)

    def logits(self, features):
        x = F.adaptive_avg_pool2d(features, 1)
        return self.last_linear(x.view(x.size(0), -1))

    def forward(self, x):
        return self.logits(self.features(x))


def inception_v4() -> nn.Module:
    return InceptionV4()


def _seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        return build().eval()

    make.__name__ = build.__name__
    make.__doc__ = build.__doc__
    return make


PUBLISHED: dict[str, Callable[[], nn.Module]] = {
    name: _seeded(build)
    for name, build in {
        "resnet18": resnet18,
        "resnet56": resnet56,
        "vgg16_bn": vgg16_bn,
        "vgg19_bn": vgg19_bn,
        "preact_resnet18": preact_resnet18,
        "mobilenet_v2": mobilenet_v2,
        "densenet121": densenet121,
        "googlenet": googlenet,
        "inception_v4": inception_v4,
        "resnext29": resnext29,
        "se_resnet20": se_resnet20,
        "senet18": senet18,
        "xception": xception,
        "depthwise_multiplier": depthwise_multiplier,
        "nasnet_like": nasnet_like,
        "vit_tiny": vit_tiny,
        "attention_net": attention_net,
        "groupnorm_net": groupnorm_net,
        "tied_weights": tied_weights,
        "unet_small": unet_small,
        "text_cnn": text_cnn,
    }.items()
}


def example_input(name: str, batch_size: int = 2) -> torch.Tensor:
    """A deterministic batch for ``PUBLISHED[name]``: images (batch, 3, 32, 32), or token ids for ``text_cnn``."""
    if name not in PUBLISHED:
        raise KeyError(f"unknown published model {name!r}; one of {', '.join(PUBLISHED)}")
    generator = torch.Generator().manual_seed(1)
    if name == "text_cnn":
        return torch.randint(0, VOCAB, (batch_size, SEQ_LEN), generator=generator)
    return torch.randn(batch_size, 3, 32, 32, generator=generator)


__all__ = ["PUBLISHED", "example_input"]
