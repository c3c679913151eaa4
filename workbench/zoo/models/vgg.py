"""VGG networks with batch normalisation (Simonyan & Zisserman 2015), small CIFAR-style by default."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from workbench.errors import ConfigError
from workbench.zoo import register_model
from workbench.zoo.models._common import check_int, check_probability, kaiming_init_

#: Named layer configurations: an int is a 3x3 convolution with that many filters, "M" a 2x2 max-pool.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "small": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
_IMAGENET_CONFIGS = {"vgg11", "vgg13", "vgg16", "vgg19"}


class VGG(nn.Module):
    """``[Conv3x3 -> BN -> ReLU | MaxPool2]*`` features, then a classifier head.

    Parameters
    ----------
    cfg
        Layer list: an int is a 3x3 convolution (padding 1) with that many filters, ``"M"`` a 2x2 max-pool.
    head
        ``"gap"``: global average pooling, then the classifier; ``"flatten"``: flatten the last
        feature map (side ``input_size / 2**pools``).
    hidden
        Widths of the hidden fully connected layers (each ``Linear -> ReLU -> Dropout``).
    batch_norm
        BatchNorm after every convolution (the convolutions then have no bias).
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        in_channels: int,
        input_size: int,
        classes: int,
        head: str,
        hidden: Sequence[int],
        batch_norm: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.input_shape = (in_channels, input_size, input_size)
        self.task = "classification"
        self.num_classes = classes
        layers: list[nn.Module] = []
        channels, side = in_channels, input_size
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                side //= 2
            else:
                layers.append(nn.Conv2d(channels, int(item), 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(int(item)))
                layers.append(nn.ReLU())
                channels = int(item)
        self.features = nn.Sequential(*layers)
        pool: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if head == "gap" else []
        fan_in = channels if head == "gap" else channels * side * side
        classifier: list[nn.Module] = [*pool, nn.Flatten()]
        for width in hidden:
            classifier += [nn.Linear(fan_in, width), nn.ReLU()]
            if dropout > 0:
                classifier.append(nn.Dropout(dropout))
            fan_in = width
        classifier.append(nn.Linear(fan_in, classes))
        self.classifier = nn.Sequential(*classifier)
        kaiming_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def _resolve_cfg(cfg: object) -> list[int | str]:
    if isinstance(cfg, str):
        if cfg not in VGG_CONFIGS:
            raise ConfigError(f"vgg_small: unknown cfg {cfg!r}; use one of {', '.join(VGG_CONFIGS)} or a list.")
        return list(VGG_CONFIGS[cfg])
    if not isinstance(cfg, Sequence) or not any(item != "M" for item in cfg):
        raise ConfigError(f"vgg_small: cfg must be a config name or a list of ints and 'M' with a conv, got {cfg!r}.")
    return [item if item == "M" else check_int("vgg_small", "cfg entry", item) for item in cfg]


@register_model("vgg_small", description="VGG with BatchNorm: small CIFAR config by default, or cfg='vgg16' etc.")
def vgg_small(
    cfg: str | Sequence[int | str] = "small",
    in_channels: int = 3,
    input_size: int = 32,
    classes: int = 10,
    head: str | None = None,
    hidden: Sequence[int] | None = None,
    batch_norm: bool = True,
    dropout: float = 0.5,
) -> VGG:
    """VGG with a named (``"small"``, ``"vgg11"``, ``"vgg13"``, ``"vgg16"``, ``"vgg19"``) or explicit ``cfg``.

    Defaults depend on the config: ``"small"`` and explicit lists use ``head="gap"`` and no hidden
    layer; the ImageNet configs use ``head="flatten"`` and ``hidden=(4096, 4096)`` with dropout, the
    original classifier (VGG-16 at 224x224 with 1000 classes: 138,357,544 parameters without batch
    norm, 138,361,768 with it, since the convolutions then drop their bias).
    """
    imagenet = isinstance(cfg, str) and cfg in _IMAGENET_CONFIGS
    layers = _resolve_cfg(cfg)
    in_channels = check_int("vgg_small", "in_channels", in_channels)
    input_size = check_int("vgg_small", "input_size", input_size)
    classes = check_int("vgg_small", "classes", classes)
    dropout = check_probability("vgg_small", "dropout", dropout)
    head = head if head is not None else ("flatten" if imagenet else "gap")
    if head not in ("gap", "flatten"):
        raise ConfigError(f"vgg_small: head must be 'gap' or 'flatten', got {head!r}.")
    hidden = hidden if hidden is not None else ((4096, 4096) if imagenet else ())
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise ConfigError(f"vgg_small: hidden must be a list of layer widths, got {hidden!r}.")
    hidden = [check_int("vgg_small", "hidden width", w) for w in hidden]
    pools = layers.count("M")
    if input_size < 2**pools:
        raise ConfigError(
            f"vgg_small: input_size={input_size} is smaller than the {2**pools}x downsampling of {pools} "
            f"max-pools; use input_size >= {2**pools} or fewer 'M' entries."
        )
    return VGG(layers, in_channels, input_size, classes, head, hidden, bool(batch_norm), dropout)
