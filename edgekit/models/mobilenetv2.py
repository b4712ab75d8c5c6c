"""MobileNetV2 (Sandler et al., CVPR 2018), key for key the network torchvision ships.

The module tree matches ``torchvision.models.mobilenetv2`` (``features.N.conv.M...``, ``classifier.1``), so
torchvision's weight files load with ``--weights``. One addition: ``InvertedResidual`` takes a
``dilation`` (default 1, torchvision's behaviour) so the DeepLabV3 head in ``segmentation.py`` can keep a
stride-16 backbone; it adds no parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.models.blocks import ConvNormAct, classifier_meta, make_divisible
from edgekit.models.registry import register_model

#: The paper's Table 2: expansion t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """Expand 1x1 (ReLU6) -> depthwise 3x3 (ReLU6) -> project 1x1 (linear), residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, dilation: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(inp, hidden, kernel_size=1, activation=nn.ReLU6))
        layers += [
            ConvNormAct(hidden, hidden, stride=stride, groups=hidden, dilation=dilation, activation=nn.ReLU6),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenet_v2_features(width_mult: float = 1.0, output_stride: int = 32) -> list[nn.Module]:
    """The ``features`` layers of MobileNetV2 at ``width_mult``, without the last 1x1 conv.

    ``output_stride`` 16 or 8 replaces the later strides by dilation (DeepLabV3's atrous backbone).
    """
    layers: list[nn.Module] = [ConvNormAct(3, make_divisible(32 * width_mult), stride=2, activation=nn.ReLU6)]
    inp, stride_so_far, dilation = make_divisible(32 * width_mult), 2, 1
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        out = make_divisible(c * width_mult)
        for i in range(n):
            stride = s if i == 0 else 1
            block_dilation = dilation
            if stride == 2 and stride_so_far >= output_stride:
                stride, dilation = 1, dilation * 2
                block_dilation = dilation // 2 if i == 0 else dilation
            elif stride == 2:
                stride_so_far *= 2
            layers.append(InvertedResidual(inp, out, stride, t, dilation=block_dilation))
            inp = out
    return layers


class MobileNetV2(nn.Module):
    """MobileNetV2 at ``width_mult`` (channels rounded to multiples of 8), torchvision's layout."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        super().__init__()
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        layers = mobilenet_v2_features(width_mult)
        layers.append(ConvNormAct(layers[-1].out_channels, self.last_channel, kernel_size=1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "mobilenet_v2",
    **classifier_meta(
        "mobilenetv2",
        "MobileNetV2 1.0x (torchvision layout; ImageNet acc@1 72.154 with its IMAGENET1K_V2 weights)",
        params=3_504_872,
        macs=300_774_272,
        width=1.0,
        pretrained_url="https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth",
        acc1=72.154,
    ),
)
def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2 1.0x, torchvision's ``mobilenet_v2`` architecture."""
    return MobileNetV2(num_classes)
