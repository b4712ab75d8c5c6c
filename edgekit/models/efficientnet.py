"""EfficientNet-B0 (Tan & Le, ICML 2019) and EfficientNet-Lite0 (TensorFlow's mobile variant).

``efficientnet_b0`` matches ``torchvision.models.efficientnet`` key for key (``features.S.B.block.M...``,
SE ``fc1``/``fc2``, ``classifier.1``), so torchvision's weight files load with ``--weights``; stochastic
depth, an identity at inference, is left out (it has no parameters).

``efficientnet_lite0`` is not in torchvision. It follows the Lite recipe of the TensorFlow reference
(tensorflow/tpu ``efficientnet/lite``): the same block table as B0 without squeeze-excite, ReLU6 instead of
SiLU, stem and head widths fixed. Its keys use the same torchvision-style tree as B0, not timm's names, so
timm's ``tf_efficientnet_lite0`` files do not load unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from edgekit.models.blocks import ConvNormAct, SqueezeExcitation, classifier_meta, make_divisible
from edgekit.models.registry import register_model


class StageConfig(NamedTuple):
    """One row of the paper's Table 1: expansion, kernel, first stride, channels in and out, repeats."""

    expand_ratio: int
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int


B0 = (
    StageConfig(1, 3, 1, 32, 16, 1),
    StageConfig(6, 3, 2, 16, 24, 2),
    StageConfig(6, 5, 2, 24, 40, 2),
    StageConfig(6, 3, 2, 40, 80, 3),
    StageConfig(6, 5, 1, 80, 112, 3),
    StageConfig(6, 5, 2, 112, 192, 4),
    StageConfig(6, 3, 1, 192, 320, 1),
)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand 1x1, depthwise kxk, optional squeeze-excite, project 1x1."""

    def __init__(self, inp: int, oup: int, expand_ratio: int, kernel: int, stride: int,
                 activation: Callable[..., nn.Module], se: bool) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and inp == oup
        expanded = make_divisible(inp * expand_ratio)
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(ConvNormAct(inp, expanded, 1, activation=activation))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded, activation=activation))
        if se:
            layers.append(SqueezeExcitation(expanded, max(1, inp // 4), activation=nn.SiLU))
        layers.append(ConvNormAct(expanded, oup, 1, activation=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        result = self.block(x)
        return result + x if self.use_res_connect else result


class EfficientNet(nn.Module):
    """EfficientNet from its stage table: ``se`` and ``activation`` tell B0 (True, SiLU) from Lite0 (False,
    ReLU6); ``last_channel`` is the head conv's width."""

    def __init__(self, stages: tuple[StageConfig, ...], num_classes: int = 1000, *, se: bool = True,
                 activation: Callable[..., nn.Module] = nn.SiLU, last_channel: int = 1280,
                 dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(3, stages[0].input_channels, 3, 2, activation=activation)]
        for cnf in stages:
            blocks = []
            for i in range(cnf.num_layers):
                inp = cnf.input_channels if i == 0 else cnf.out_channels
                blocks.append(MBConv(inp, cnf.out_channels, cnf.expand_ratio, cnf.kernel,
                                     cnf.stride if i == 0 else 1, activation, se))
            layers.append(nn.Sequential(*blocks))
        layers.append(ConvNormAct(stages[-1].out_channels, last_channel, 1, activation=activation))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "efficientnet_b0",
    **classifier_meta(
        "efficientnet",
        "EfficientNet-B0 (torchvision layout; ImageNet acc@1 77.692 with its IMAGENET1K_V1 weights)",
        params=5_288_548,
        macs=385_814_752,
        pretrained_url="https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
        acc1=77.692,
    ),
)
def efficientnet_b0(num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B0, torchvision's ``efficientnet_b0`` architecture."""
    return EfficientNet(B0, num_classes)


@register_model(
    "efficientnet_lite0",
    **classifier_meta(
        "efficientnet",
        "EfficientNet-Lite0 (B0's blocks without squeeze-excite, ReLU6; torchvision-style keys; no "
        "published weights in this layout)",
        params=4_652_008,
        macs=385_187_552,
    ),
)
def efficientnet_lite0(num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-Lite0: B0's table, no squeeze-excite, ReLU6, head 1280."""
    return EfficientNet(B0, num_classes, se=False, activation=nn.ReLU6)
