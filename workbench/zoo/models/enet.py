"""ENet for real-time semantic segmentation (Paszke et al. 2016), as in the authors' Torch code.

Encoder (PReLU): an initial block, stage 1 (a downsampling bottleneck and 4 regular ones) and stages
2 and 3 (a downsampling bottleneck before stage 2, then twice the pattern regular, dilated 2,
asymmetric 5, dilated 4, regular, dilated 8, asymmetric 5, dilated 16). Decoder (ReLU): stage 4 and
5, each an upsampling bottleneck that max-unpools with the indices of the matching encoder pooling,
followed by regular bottlenecks; a final 2x2 transposed convolution gives full-resolution logits.

Details follow the reference implementation (e-lab/ENet-training): bottlenecks project to
``out_channels // 4`` channels; the projection and expansion 1x1 convolutions (and the first of the
asymmetric pair) have no bias; there is no activation between the expansion and the sum; spatial
dropout is 0.01 in stage 1 and 0.1 afterwards, none in the decoder; the decoder upsamples its
extension branch with a 3x3 transposed convolution (stride 2) and its main branch with a 1x1
convolution, BatchNorm and max-unpooling; BatchNorm eps is 1e-3.

Options, off by default (the published network): ``width`` scales the channels, ``encoder_scores`` adds
the encoder's class scores to the logits; :func:`enet` says why small scenes need them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from workbench.errors import ConfigError
from workbench.zoo import register_model
from workbench.zoo.models._common import check_int, check_positive, check_size2d, kaiming_init_, zero_start_

_BN_EPS = 1e-3
#: Stage 2 and 3 pattern: (kind, dilation or kernel size).
_STAGE_PATTERN = [
    ("regular", 1),
    ("dilated", 2),
    ("asymmetric", 5),
    ("dilated", 4),
    ("regular", 1),
    ("dilated", 8),
    ("asymmetric", 5),
    ("dilated", 16),
]


def enet_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded down to a multiple of 4, at least 16: every bottleneck projects to a quarter
    of its channels, so the smallest group of units has 4 of them at any width, as in the published network
    (selectors such as spectral embedding need at least 3)."""
    return max(16, int(channels * width) // 4 * 4)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class InitialBlock(nn.Module):
    """3x3 stride-2 convolution with ``out_channels - in_channels`` filters, concatenated with a 2x2
    max-pool of the input, then BatchNorm and PReLU."""

    def __init__(self, in_channels: int, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = _bn(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class EncoderBottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck with PReLU: ``x + expand(conv(project(x)))``.

    Parameters
    ----------
    kind
        ``"regular"`` (3x3), ``"dilated"`` (3x3 with dilation ``size``) or ``"asymmetric"``
        (``size x 1`` then ``1 x size``).
    """

    def __init__(self, channels: int, kind: str = "regular", size: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        internal = channels // 4
        self.project = nn.Conv2d(channels, internal, 1, bias=False)
        self.project_bn = _bn(internal)
        self.project_act = nn.PReLU(internal)
        if kind == "asymmetric":
            pad = (size - 1) // 2
            self.conv = nn.Sequential(
                nn.Conv2d(internal, internal, (size, 1), padding=(pad, 0), bias=False),
                nn.Conv2d(internal, internal, (1, size), padding=(0, pad)),
            )
        else:
            dilation = size if kind == "dilated" else 1
            self.conv = nn.Conv2d(internal, internal, 3, padding=dilation, dilation=dilation)
        self.conv_bn = _bn(internal)
        self.conv_act = nn.PReLU(internal)
        self.expand = nn.Conv2d(internal, channels, 1, bias=False)
        self.expand_bn = _bn(channels)
        self.dropout = nn.Dropout2d(dropout)
        self.act = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        ext = self.project_act(self.project_bn(self.project(x)))
        ext = self.conv_act(self.conv_bn(self.conv(ext)))
        ext = self.dropout(self.expand_bn(self.expand(ext)))
        return self.act(x + ext)


class DownsamplingBottleneck(nn.Module):
    """Bottleneck that halves the resolution and widens ``in_channels -> out_channels``.

    Main branch: 2x2 max-pool (indices kept for the decoder's unpooling), then zero channels appended
    up to ``out_channels``. Extension: 2x2 stride-2 projection, 3x3 convolution, 1x1 expansion.
    ``forward`` returns ``(output, pooling indices)``.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        internal = out_channels // 4
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.project = nn.Conv2d(in_channels, internal, 2, stride=2, bias=False)
        self.project_bn = _bn(internal)
        self.project_act = nn.PReLU(internal)
        self.conv = nn.Conv2d(internal, internal, 3, padding=1)
        self.conv_bn = _bn(internal)
        self.conv_act = nn.PReLU(internal)
        self.expand = nn.Conv2d(internal, out_channels, 1, bias=False)
        self.expand_bn = _bn(out_channels)
        self.dropout = nn.Dropout2d(dropout)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pooled = self.pool(x)
        main, indices = pooled[0], pooled[1]
        ext = self.project_act(self.project_bn(self.project(x)))
        ext = self.conv_act(self.conv_bn(self.conv(ext)))
        ext = self.dropout(self.expand_bn(self.expand(ext)))
        # Zero channels appended to the pooled ones up to the width of the extension. The sizes are
        # read from the tensors (torch.fx records them as graph nodes), so a model whose channels
        # were pruned in either branch still runs.
        zeros = main.new_zeros((main.shape[0], ext.shape[1] - main.shape[1], main.shape[2], main.shape[3]))
        main = torch.cat([main, zeros], dim=1)
        return self.act(main + ext), indices


class _DecoderBase(nn.Module):
    """The extension branch of the decoder bottlenecks (ReLU): 1x1 projection, ``conv``, 1x1 expansion."""

    def _build_extension(self, in_channels: int, out_channels: int, conv: nn.Module) -> None:
        internal = out_channels // 4
        self.project = nn.Conv2d(in_channels, internal, 1, bias=False)
        self.project_bn = _bn(internal)
        self.project_act = nn.ReLU()
        self.conv = conv
        self.conv_bn = _bn(internal)
        self.conv_act = nn.ReLU()
        self.expand = nn.Conv2d(internal, out_channels, 1, bias=False)
        self.expand_bn = _bn(out_channels)
        self.act = nn.ReLU()

    def _extension(self, x: Tensor) -> Tensor:
        ext = self.project_act(self.project_bn(self.project(x)))
        ext = self.conv_act(self.conv_bn(self.conv(ext)))
        return self.expand_bn(self.expand(ext))


class DecoderBottleneck(_DecoderBase):
    """Regular decoder bottleneck: ``relu(x + expand(conv3x3(project(x))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self._build_extension(channels, channels, nn.Conv2d(channels // 4, channels // 4, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self._extension(x))


class UpsamplingBottleneck(_DecoderBase):
    """Decoder bottleneck that doubles the resolution; ``forward(x, indices)``.

    Main branch: 1x1 convolution and BatchNorm to ``out_channels``, then max-unpooling with the
    indices of the matching encoder pooling. Extension: 1x1 projection, 3x3 stride-2 transposed
    convolution, 1x1 expansion.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        internal = out_channels // 4
        self.main_conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.main_bn = _bn(out_channels)
        self.unpool = nn.MaxUnpool2d(2, 2)
        upconv = nn.ConvTranspose2d(internal, internal, 3, stride=2, padding=1, output_padding=1)
        self._build_extension(in_channels, out_channels, upconv)

    def forward(self, x: Tensor, indices: Tensor) -> Tensor:
        main = self.unpool(self.main_bn(self.main_conv(x)), indices)
        return self.act(main + self._extension(x))


def _zero_scores(channels: int, classes: int) -> nn.Conv2d:
    """The encoder's 1x1 class scores, zero at the start: the network then computes what ENet without them
    computes (and its other weights are those of the same seed). He-initialized, the layer adds logits ten
    times larger than the decoder's to every pixel and learning stalls (seed 0: mIoU 0.19-0.27 against 0.64-0.67).
    Marked :data:`~workbench.zoo.models._common.ZERO_START`, it stays zero when the network is re-initialized (a
    scratch-trained control)."""
    return zero_start_(nn.Conv2d(channels, classes, 1))


class ENet(nn.Module):
    """ENet; input ``(N, in_channels, H, W)`` with ``H`` and ``W`` divisible by 8, output ``(N, classes, H, W)``.

    ``width`` scales the 16 / 64 / 128 channels of the stages (:func:`enet_channels`); with
    ``encoder_scores`` a 1x1 convolution ``scores`` reads the encoder's last stage and its class scores,
    upsampled 8x (bilinear), are added to the decoder's logits.
    """

    def __init__(
        self,
        in_channels: int,
        input_size: tuple[int, int],
        classes: int,
        width: float = 1.0,
        encoder_scores: bool = False,
    ) -> None:
        super().__init__()
        self.input_shape = (in_channels, *input_size)
        self.task = "segmentation"
        self.num_classes = classes
        c1, c2, c3 = (enet_channels(c, width) for c in (16, 64, 128))
        self.initial = InitialBlock(in_channels, c1)
        self.down1 = DownsamplingBottleneck(c1, c2, dropout=0.01)
        self.stage1 = nn.Sequential(*[EncoderBottleneck(c2, dropout=0.01) for _ in range(4)])
        self.down2 = DownsamplingBottleneck(c2, c3, dropout=0.1)
        self.stage2 = nn.Sequential(*[EncoderBottleneck(c3, kind, size) for kind, size in _STAGE_PATTERN])
        self.stage3 = nn.Sequential(*[EncoderBottleneck(c3, kind, size) for kind, size in _STAGE_PATTERN])
        self.up4 = UpsamplingBottleneck(c3, c2)
        self.stage4 = nn.Sequential(DecoderBottleneck(c2), DecoderBottleneck(c2))
        self.up5 = UpsamplingBottleneck(c2, c1)
        self.stage5 = nn.Sequential(DecoderBottleneck(c1))
        self.fullconv = nn.ConvTranspose2d(c1, classes, 2, stride=2)
        kaiming_init_(self)
        self.scores = _zero_scores(c3, classes) if encoder_scores else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.initial(x)
        x, indices1 = self.down1(x)
        x = self.stage1(x)
        x, indices2 = self.down2(x)
        x = self.stage3(self.stage2(x))
        coarse = None if self.scores is None else self.scores(x)
        x = self.stage4(self.up4(x, indices2))
        x = self.stage5(self.up5(x, indices1))
        logits = self.fullconv(x)
        if coarse is None:
            return logits
        return logits + F.interpolate(coarse, scale_factor=8, mode="bilinear", align_corners=False)


@register_model("enet", description="ENet semantic segmentation (Paszke et al. 2016), 0.36M params for 19 classes")
def enet(
    classes: int = 19,
    in_channels: int = 3,
    input_size: int | tuple[int, int] = 512,
    width: float = 1.0,
    encoder_scores: bool = False,
) -> ENet:
    """ENet for ``classes`` classes on inputs of side ``input_size`` (int or ``(height, width)``).

    The defaults are the published network: 364,311 parameters with 19 classes (the paper reports
    0.37M); each class adds 65.

    Parameters
    ----------
    classes, in_channels, input_size
        Both sides must be divisible by 8 (three 2x downsamplings that the decoder undoes exactly);
        ``in_channels`` must be below the initial block's maps (16 up to width 1: it concatenates the
        pooled input with ``16 - in_channels`` convolution maps).
    width
        Multiplies the 16 / 64 / 128 channels of the stages, rounded down to multiples of 4 and at least 16
        (:func:`enet_channels`): 0.5 gives 16 / 32 / 64 (95,723 parameters with 7 classes). The layout and
        the number of blocks stay the published ones.
    encoder_scores
        Add class scores of the encoder (a 1x1 convolution on stage 3, 1/8 resolution, upsampled 8x
        bilinearly) to the decoder's logits, as FCN sums the scores of several strides (Long et al. 2015).

    Notes
    -----
    Why the published network does not learn small synthetic scenes in a short schedule, measured by
    ``analyses/enet_shapes_seg.py`` on ``shapes-seg`` (seed 0 unless an interval is given). Trained from
    scratch in one stage, the encoder learns only through the decoder, whose main branch passes gradients
    back at the max-unpooling positions alone and whose extension branch narrows to ``channels // 4`` maps
    (4 before the last stage); the network stays on the loss plateau of "a shape here, kind unknown". At
    width 0.5, 64 px, 1,200 training scenes and 10 epochs it scores mIoU 0.18, where its encoder with a 1x1
    classifier and no decoder scores 0.68. The paper trains the encoder first on 1/8-resolution labels and
    appends the decoder afterwards; ``encoder_scores`` gives the encoder that signal in one run: 0.682
    [0.660, 0.704] over 3 seeds, of which the decoder adds little in this schedule (0.69 against the
    encoder's 0.68). Two further causes: at 32 px the 1/8 grid has 8-pixel cells on shapes 6 to 16 pixels
    wide, and labels constant on those cells score at most 0.375 (0.63 at 64 px; the same settings at 32 px:
    0.31); the class weights ``1 / ln(1.02 + p)`` make shapes spill into the background (0.58 with them).
    A small U-Net reaches 0.77 on the same scenes.
    """
    classes = check_int("enet", "classes", classes)
    in_channels = check_int("enet", "in_channels", in_channels)
    width = check_positive("enet", "width", width)
    if not isinstance(encoder_scores, bool):
        raise ConfigError(f"enet: encoder_scores must be true or false, got {encoder_scores!r}.")
    maps = enet_channels(16, width)
    if in_channels >= maps:
        raise ConfigError(
            f"enet: in_channels must be below the initial block's {maps} maps (at width {width:g}), got "
            f"{in_channels}; use fewer input channels or a larger width."
        )
    size = check_size2d("enet", "input_size", input_size)
    if size[0] % 8 or size[1] % 8:
        raise ConfigError(f"enet: input_size {size} must be divisible by 8 in both sides, e.g. 512 or (512, 1024).")
    return ENet(in_channels, size, classes, width=width, encoder_scores=encoder_scores)
