"""RegNetY-400MF (Radosavovic et al., "Designing Network Design Spaces", CVPR 2020), key for key torchvision's.

The module tree matches ``torchvision.models.regnet`` (``stem``, ``trunk_output.blockS.blockS-I.f.a/b/se/c``,
``proj``, ``fc``), so torchvision's weight files load with ``--weights``. The per-stage widths and depths
come from the paper's quantized linear rule with RegNetY-400MF's parameters (depth 16, w0 48, wa 27.89,
wm 2.09, group width 8, SE ratio 0.25), computed as torchvision computes them.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from edgekit.models.blocks import ConvNormAct, SqueezeExcitation, classifier_meta, make_divisible
from edgekit.models.registry import register_model


def block_params(depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
                 bottleneck_multiplier: float = 1.0) -> list[tuple[int, int, int]]:
    """Per-stage ``(width, depth, group_width)`` from RegNet's parameters (paper section 3.3).

    Block widths ``w_0 + w_a * j`` are snapped to ``w_0 * w_m ** round(log(w_j / w_0) / log(w_m))`` and to
    multiples of 8; consecutive equal widths form a stage; widths are then made divisible by the group width.
    """
    widths_cont = torch.arange(depth) * w_a + w_0
    capacity = torch.round(torch.log(widths_cont / w_0) / math.log(w_m))
    widths = (torch.round(torch.divide(w_0 * torch.pow(w_m, capacity), 8)) * 8).int().tolist()
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    result = []
    for w, d in stages:
        w_bot = int(w * bottleneck_multiplier)
        g = min(group_width, w_bot)
        w_bot = make_divisible(w_bot, g)
        result.append((int(w_bot / bottleneck_multiplier), d, g))
    return result


class BottleneckTransform(nn.Sequential):
    """1x1, grouped 3x3 (strided), squeeze-excite, 1x1 (linear)."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, se_ratio: float | None) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        groups = width_out // group_width
        layers["a"] = ConvNormAct(width_in, width_out, 1)
        layers["b"] = ConvNormAct(width_out, width_out, 3, stride, groups=groups)
        if se_ratio:
            layers["se"] = SqueezeExcitation(width_out, int(round(se_ratio * width_in)))
        layers["c"] = ConvNormAct(width_out, width_out, 1, activation=None)
        super().__init__(layers)


class ResBottleneckBlock(nn.Module):
    """x + F(x), with a strided 1x1 projection on the skip when the shape changes; ReLU after the sum."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, se_ratio: float | None) -> None:
        super().__init__()
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = ConvNormAct(width_in, width_out, 1, stride, activation=None)
        self.f = BottleneckTransform(width_in, width_out, stride, group_width, se_ratio)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.proj is None else self.proj(x)
        return self.activation(skip + self.f(x))


class RegNet(nn.Module):
    """RegNet: a 3x3 stride-2 stem of ``stem_width``, one stage per ``(width, depth, group_width)``, fc."""

    def __init__(self, stages: list[tuple[int, int, int]], se_ratio: float | None, num_classes: int = 1000,
                 stem_width: int = 32) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, stem_width, 3, 2)
        blocks = []
        current = stem_width
        for i, (width, depth, group_width) in enumerate(stages, start=1):
            stage = nn.Sequential()
            for j in range(depth):
                stage.add_module(f"block{i}-{j}", ResBottleneckBlock(current if j == 0 else width, width,
                                                                     2 if j == 0 else 1, group_width, se_ratio))
            blocks.append((f"block{i}", stage))
            current = width
        self.trunk_output = nn.Sequential(OrderedDict(blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(current, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.trunk_output(self.stem(x)))
        return self.fc(x.flatten(start_dim=1))


@register_model(
    "regnet_y_400mf",
    **classifier_meta(
        "regnet",
        "RegNetY-400MF (torchvision layout; ImageNet acc@1 75.804 with its IMAGENET1K_V2 weights)",
        params=4_344_144,
        macs=401_842_848,
        pretrained_url="https://download.pytorch.org/models/regnet_y_400mf-e6988f5f.pth",
        acc1=75.804,
    ),
)
def regnet_y_400mf(num_classes: int = 1000) -> RegNet:
    """RegNetY-400MF, torchvision's ``regnet_y_400mf`` architecture."""
    return RegNet(block_params(16, 48, 27.89, 2.09, 8), se_ratio=0.25, num_classes=num_classes)
