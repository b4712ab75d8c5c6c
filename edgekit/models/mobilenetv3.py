"""MobileNetV3 Small and Large (Howard et al., ICCV 2019), key for key the networks torchvision ships.

The module tree matches ``torchvision.models.mobilenetv3`` (``features.N.block.M...``, SE ``fc1``/``fc2``,
``classifier.0``/``classifier.3``), so torchvision's weight files load with ``--weights``. Hard-swish and
hard-sigmoid are ``nn.Hardswish``/``nn.Hardsigmoid`` (ONNX ``HardSwish``/``HardSigmoid``), BatchNorm eps 1e-3.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from edgekit.models.blocks import ConvNormAct, SqueezeExcitation, classifier_meta, make_divisible
from edgekit.models.registry import register_model

BN_EPS = 1e-3


class BlockConfig(NamedTuple):
    """One bneck row of the paper's Tables 1-2."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    activation: str  # "RE" (ReLU) or "HS" (hard-swish)
    stride: int


LARGE = (
    BlockConfig(16, 3, 16, 16, False, "RE", 1),
    BlockConfig(16, 3, 64, 24, False, "RE", 2),
    BlockConfig(24, 3, 72, 24, False, "RE", 1),
    BlockConfig(24, 5, 72, 40, True, "RE", 2),
    BlockConfig(40, 5, 120, 40, True, "RE", 1),
    BlockConfig(40, 5, 120, 40, True, "RE", 1),
    BlockConfig(40, 3, 240, 80, False, "HS", 2),
    BlockConfig(80, 3, 200, 80, False, "HS", 1),
    BlockConfig(80, 3, 184, 80, False, "HS", 1),
    BlockConfig(80, 3, 184, 80, False, "HS", 1),
    BlockConfig(80, 3, 480, 112, True, "HS", 1),
    BlockConfig(112, 3, 672, 112, True, "HS", 1),
    BlockConfig(112, 5, 672, 160, True, "HS", 2),
    BlockConfig(160, 5, 960, 160, True, "HS", 1),
    BlockConfig(160, 5, 960, 160, True, "HS", 1),
)
SMALL = (
    BlockConfig(16, 3, 16, 16, True, "RE", 2),
    BlockConfig(16, 3, 72, 24, False, "RE", 2),
    BlockConfig(24, 3, 88, 24, False, "RE", 1),
    BlockConfig(24, 5, 96, 40, True, "HS", 2),
    BlockConfig(40, 5, 240, 40, True, "HS", 1),
    BlockConfig(40, 5, 240, 40, True, "HS", 1),
    BlockConfig(40, 5, 120, 48, True, "HS", 1),
    BlockConfig(48, 5, 144, 48, True, "HS", 1),
    BlockConfig(48, 5, 288, 96, True, "HS", 2),
    BlockConfig(96, 5, 576, 96, True, "HS", 1),
    BlockConfig(96, 5, 576, 96, True, "HS", 1),
)


class InvertedResidual(nn.Module):
    """bneck: expand 1x1 (if wider) -> depthwise kxk -> optional SE (hard-sigmoid gate) -> project 1x1."""

    def __init__(self, cnf: BlockConfig) -> None:
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.activation == "HS" else nn.ReLU
        layers: list[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(ConvNormAct(cnf.input_channels, cnf.expanded_channels, 1, activation=act, bn_eps=BN_EPS))
        layers.append(ConvNormAct(cnf.expanded_channels, cnf.expanded_channels, cnf.kernel, cnf.stride,
                                  groups=cnf.expanded_channels, activation=act, bn_eps=BN_EPS))
        if cnf.use_se:
            squeeze = make_divisible(cnf.expanded_channels // 4, 8)
            layers.append(SqueezeExcitation(cnf.expanded_channels, squeeze, gate=nn.Hardsigmoid))
        layers.append(ConvNormAct(cnf.expanded_channels, cnf.out_channels, 1, activation=None, bn_eps=BN_EPS))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, x: Tensor) -> Tensor:
        result = self.block(x)
        return result + x if self.use_res_connect else result


class MobileNetV3(nn.Module):
    """MobileNetV3 from its bneck table and the width of the classifier's hidden layer."""

    def __init__(self, setting: tuple[BlockConfig, ...], last_channel: int, num_classes: int = 1000) -> None:
        super().__init__()
        stem = ConvNormAct(3, setting[0].input_channels, 3, 2, activation=nn.Hardswish, bn_eps=BN_EPS)
        layers: list[nn.Module] = [stem]
        layers += [InvertedResidual(cnf) for cnf in setting]
        lastconv_in = setting[-1].out_channels
        lastconv_out = 6 * lastconv_in
        layers.append(ConvNormAct(lastconv_in, lastconv_out, 1, activation=nn.Hardswish, bn_eps=BN_EPS))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(lastconv_out, last_channel),
            nn.Hardswish(),
            nn.Dropout(p=0.2),
            nn.Linear(last_channel, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "mobilenet_v3_large",
    **classifier_meta(
        "mobilenetv3",
        "MobileNetV3-Large (torchvision layout; ImageNet acc@1 75.274 with its IMAGENET1K_V2 weights)",
        params=5_483_032,
        macs=216_589_760,
        width=1.0,
        pretrained_url="https://download.pytorch.org/models/mobilenet_v3_large-5c1a4163.pth",
        acc1=75.274,
    ),
)
def mobilenet_v3_large(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Large 1.0x, torchvision's ``mobilenet_v3_large`` architecture."""
    return MobileNetV3(LARGE, 1280, num_classes)


@register_model(
    "mobilenet_v3_small",
    **classifier_meta(
        "mobilenetv3",
        "MobileNetV3-Small (torchvision layout; ImageNet acc@1 67.668 with its IMAGENET1K_V1 weights)",
        params=2_542_856,
        macs=56_510_400,
        width=1.0,
        pretrained_url="https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
        acc1=67.668,
    ),
)
def mobilenet_v3_small(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Small 1.0x, torchvision's ``mobilenet_v3_small`` architecture."""
    return MobileNetV3(SMALL, 1024, num_classes)
