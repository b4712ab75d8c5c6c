"""AugShuffleNet (Ye, "AugShuffleNet: Communicate More, Compute Less", arXiv 2203.06589).

The network is ShuffleNetV2 at the same four widths with one change: the stride-1 blocks of stages 3 and
4 become Augmented Shuffle Blocks. Stage 2 and every downsampling block stay ShuffleNetV2's
``InvertedResidual``, so all keys outside those blocks match torchvision's ShuffleNetV2.

Augmented Shuffle Block on ``c`` input channels with split ratio ``r``::

    x -> split [c1 | c2 | c3]          c1 = 2 * round(c * r / 2), c2 = c3 = (c - c1) / 2
    x1 -> 1x1 conv + BN (no ReLU) -> 3x3 depthwise + BN -> halves (p1, p2)
    crossover: cat(p2, x2) (c/2 channels) -> 1x1 conv + BN + ReLU -> out
    cat(out, x3, p1) -> channel shuffle

Only the c1 channels take the 1x1 + depthwise path (the "compute less"), and half of its result is
mixed with untouched channels by the crossover conv (the "communicate more").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from edgekit.models.channel_shuffle import channel_shuffle
from edgekit.models.registry import register_model
from edgekit.models.shufflenetv2 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    STAGES_OUT_CHANNELS,
    STAGES_REPEATS,
    InvertedResidual,
    ShuffleNetV2,
)

DEFAULT_SPLIT_RATIO = 0.375
AUGMENTED_STAGES = ("stage3", "stage4")


class AugShuffleBlock(nn.Module):
    """The Augmented Shuffle Block (stride 1, ``channels`` in and out) with split ratio ``r`` in (0, 0.5].

    Raises ``ValueError`` for ``r`` outside (0, 0.5], an odd channel count, or a split that leaves a part
    empty.
    """

    def __init__(self, channels: int, r: float = DEFAULT_SPLIT_RATIO) -> None:
        super().__init__()
        if not (0.0 < r <= 0.5):
            raise ValueError(f"AugShuffleBlock split ratio r must be in (0, 0.5], got {r}")
        if channels % 2:
            raise ValueError(f"AugShuffleBlock needs an even channel count, got {channels}")
        c = channels
        # c1 is rounded (half up) to an even number so the depthwise output splits into equal halves. With
        # c even, c - c1 is even too, so c2 = c3 exactly and the crossover sees c1/2 + c2 = c/2 channels:
        # the block maps c channels to c channels, and ShuffleNetV2's stage widths stay unchanged.
        c1 = 2 * math.floor(c * r / 2 + 0.5)
        c2 = (c - c1) // 2
        if c1 < 2 or c2 < 1:
            raise ValueError(f"AugShuffleBlock: r={r}, {c} channels leaves a part empty (c1={c1}, c2={c2})")
        self.split_ratio = r
        self.splits = (c1, c2, c2)
        # The seed design's block sketch (shared/references, AugShuffleNet notes) shuffles 4 groups when
        # r < 0.5 and ShuffleNetV2's 2 at r == 0.5; we follow it.
        self.shuffle_groups = 4 if r < 0.5 else 2
        if c % self.shuffle_groups:
            raise ValueError(f"AugShuffleBlock: cannot shuffle {c} channels in {self.shuffle_groups} groups")

        half = c // 2
        self.branch_conv0 = nn.Sequential(
            nn.Conv2d(c1, c1, kernel_size=1, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(c1),
        )
        self.branch_dwconv = nn.Sequential(
            nn.Conv2d(c1, c1, kernel_size=3, stride=1, padding=1, groups=c1, bias=False),
            nn.BatchNorm2d(c1),
        )
        self.crossover_conv = nn.Sequential(
            nn.Conv2d(half, half, kernel_size=1, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        x1, x2, x3 = torch.split(x, list(self.splits), dim=1)
        p1, p2 = self.branch_dwconv(self.branch_conv0(x1)).chunk(2, dim=1)
        out = self.crossover_conv(torch.cat((p2, x2), dim=1))
        out = torch.cat((out, x3, p1), dim=1)
        return channel_shuffle(out, self.shuffle_groups)


class AugShuffleNet(ShuffleNetV2):
    """ShuffleNetV2 whose stage-3 and stage-4 stride-1 blocks are ``AugShuffleBlock(channels, r)``."""

    def __init__(
        self,
        stages_repeats: list[int] | tuple[int, ...],
        stages_out_channels: list[int] | tuple[int, ...],
        num_classes: int = 1000,
        r: float = DEFAULT_SPLIT_RATIO,
    ) -> None:
        if not (0.0 < r <= 0.5):
            raise ValueError(f"AugShuffleNet split ratio r must be in (0, 0.5], got {r}")

        def stride1_block(stage_name: str, channels: int) -> nn.Module:
            if stage_name in AUGMENTED_STAGES:
                return AugShuffleBlock(channels, r)
            return InvertedResidual(channels, channels, 1)

        super().__init__(stages_repeats, stages_out_channels, num_classes, stride1_block=stride1_block)
        self.split_ratio = r


#: Parameters and multiply-adds per width, as registry.count_params_and_macs counts them (tested).
_COUNTS = {
    "x0_5": (1_345_612, 38_320_840),
    "x1_0": (2_163_166, 133_187_094),
    "x1_5": (3_238_700, 268_537_736),
    "x2_0": (6_891_454, 531_802_582),
}


def _meta(width: str) -> dict:
    w = float(width[1:].replace("_", "."))
    return dict(
        family="augshufflenet",
        width=w,
        params=_COUNTS[width][0],
        macs=_COUNTS[width][1],
        task="classification",
        pure_cnn=True,
        pretrained_url=None,
        input_shape=(1, 3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        description=(
            f"AugShuffleNet {w}x (arXiv 2203.06589, r=0.375): ShuffleNetV2 {w}x widths, augmented shuffle "
            "blocks in stages 3-4; no published ImageNet weights"
        ),
    )


@register_model("augshufflenet_x0_5", **_meta("x0_5"))
def augshufflenet_x0_5(num_classes: int = 1000, r: float = DEFAULT_SPLIT_RATIO) -> AugShuffleNet:
    """AugShuffleNet at ShuffleNetV2 0.5x widths."""
    return AugShuffleNet(STAGES_REPEATS, STAGES_OUT_CHANNELS["x0_5"], num_classes, r)


@register_model("augshufflenet_x1_0", **_meta("x1_0"))
def augshufflenet_x1_0(num_classes: int = 1000, r: float = DEFAULT_SPLIT_RATIO) -> AugShuffleNet:
    """AugShuffleNet at ShuffleNetV2 1.0x widths."""
    return AugShuffleNet(STAGES_REPEATS, STAGES_OUT_CHANNELS["x1_0"], num_classes, r)


@register_model("augshufflenet_x1_5", **_meta("x1_5"))
def augshufflenet_x1_5(num_classes: int = 1000, r: float = DEFAULT_SPLIT_RATIO) -> AugShuffleNet:
    """AugShuffleNet at ShuffleNetV2 1.5x widths."""
    return AugShuffleNet(STAGES_REPEATS, STAGES_OUT_CHANNELS["x1_5"], num_classes, r)


@register_model("augshufflenet_x2_0", **_meta("x2_0"))
def augshufflenet_x2_0(num_classes: int = 1000, r: float = DEFAULT_SPLIT_RATIO) -> AugShuffleNet:
    """AugShuffleNet at ShuffleNetV2 2.0x widths."""
    return AugShuffleNet(STAGES_REPEATS, STAGES_OUT_CHANNELS["x2_0"], num_classes, r)
