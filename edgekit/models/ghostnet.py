"""GhostNet 1.0x (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

Not in torchvision. Layer for layer the authors' reference (huawei-noah/Efficient-AI-Backbones,
``ghostnet_pytorch``; also timm's ``ghostnet_100``): Ghost modules (a 1x1 conv makes half the channels, a
3x3 depthwise conv makes the other half from them), Ghost bottlenecks with squeeze-excite where the paper's
Table 1 has it, a 960-channel 1x1 conv, global pool, a 1280-wide 1x1 conv with bias, and the classifier.
Differences from the reference: the SE gate is ``nn.Hardsigmoid`` (the reference spells the same function
``relu6(x + 3) / 6``), the Ghost module slices its output only when the channel count is odd (never for
1.0x), and the SE block and the 960-channel conv use the zoo's torchvision-style names (``se.fc1``/``fc2``,
``blocks.9.0.0``) instead of the reference's (``conv_reduce``/``conv_expand``, ``conv``/``bn1``), so the
reference's weight files need their keys renamed before ``--weights`` accepts them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from edgekit.models.blocks import ConvNormAct, SqueezeExcitation, classifier_meta, make_divisible
from edgekit.models.registry import register_model

#: The paper's Table 1, one list per stage: kernel, expansion (hidden channels), out channels, SE ratio, stride.
GHOSTNET_CFG = (
    ((3, 16, 16, 0.0, 1),),
    ((3, 48, 24, 0.0, 2),),
    ((3, 72, 24, 0.0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0.0, 2),),
    ((3, 200, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 480, 112, 0.25, 1),
     (3, 672, 112, 0.25, 1)),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1)),
)


class GhostModule(nn.Module):
    """``oup`` channels: a 1x1 conv makes ``ceil(oup / 2)``, a 3x3 depthwise conv the rest from those."""

    def __init__(self, inp: int, oup: int, relu: bool = True) -> None:
        super().__init__()
        self.oup = oup
        init_channels = math.ceil(oup / 2)
        act = nn.ReLU if relu else nn.Identity
        self.primary_conv = nn.Sequential(
            nn.Conv2d(inp, init_channels, 1, 1, 0, bias=False), nn.BatchNorm2d(init_channels), act()
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, init_channels, 3, 1, 1, groups=init_channels, bias=False),
            nn.BatchNorm2d(init_channels),
            act(),
        )

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.primary_conv(x)
        out = torch.cat([x1, self.cheap_operation(x1)], dim=1)
        return out if out.shape[1] == self.oup else out[:, : self.oup]


class GhostBottleneck(nn.Module):
    """Ghost module (ReLU), depthwise stride-2 conv when downsampling, optional SE, Ghost module (linear)."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, dw_kernel_size: int = 3, stride: int = 1,
                 se_ratio: float = 0.0) -> None:
        super().__init__()
        self.stride = stride
        self.ghost1 = GhostModule(in_chs, mid_chs, relu=True)
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride, (dw_kernel_size - 1) // 2,
                                     groups=mid_chs, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        self.se = None
        if se_ratio > 0:
            self.se = SqueezeExcitation(mid_chs, make_divisible(mid_chs * se_ratio, 4), gate=nn.Hardsigmoid)
        self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, in_chs, dw_kernel_size, stride, (dw_kernel_size - 1) // 2, groups=in_chs,
                          bias=False),
                nn.BatchNorm2d(in_chs),
                nn.Conv2d(in_chs, out_chs, 1, 1, 0, bias=False),
                nn.BatchNorm2d(out_chs),
            )

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        x = self.ghost1(x)
        if self.stride > 1:
            x = self.bn_dw(self.conv_dw(x))
        if self.se is not None:
            x = self.se(x)
        x = self.ghost2(x)
        return x + self.shortcut(residual)


class GhostNet(nn.Module):
    """GhostNet at ``width`` (1.0 in the paper's Table 1)."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        stem = make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act1 = nn.ReLU()
        stages: list[nn.Module] = []
        inp = stem
        for cfg in GHOSTNET_CFG:
            layers = []
            for k, exp, c, se_ratio, s in cfg:
                out = make_divisible(c * width, 4)
                layers.append(GhostBottleneck(inp, make_divisible(exp * width, 4), out, k, s, se_ratio))
                inp = out
            stages.append(nn.Sequential(*layers))
        hidden = make_divisible(exp * width, 4)
        stages.append(nn.Sequential(ConvNormAct(inp, hidden, 1)))
        self.blocks = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv_head = nn.Conv2d(hidden, 1280, 1, 1, 0, bias=True)
        self.act2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.act1(self.bn1(self.conv_stem(x))))
        x = self.act2(self.conv_head(self.global_pool(x)))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


@register_model(
    "ghostnet",
    **classifier_meta(
        "ghostnet",
        "GhostNet 1.0x (CVPR 2020; the authors' reference architecture, torchvision-style SE key names)",
        params=5_182_508,
        macs=141_150_512,
        width=1.0,
    ),
)
def ghostnet(num_classes: int = 1000) -> GhostNet:
    """GhostNet 1.0x."""
    return GhostNet(num_classes)
