"""SqueezeNet 1.1 (Iandola et al., 2016; the 1.1 revision from the authors' repository), key for key
torchvision's ``squeezenet1_1``.

The module tree matches ``torchvision.models.squeezenet`` (``features.N.squeeze/expand1x1/expand3x3``,
``classifier.1``), so torchvision's weight files load with ``--weights``. Its max pools use ``ceil_mode``
and its classifier is a 1x1 conv, ReLU and global average pool (no Linear layer).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.models.blocks import classifier_meta
from edgekit.models.registry import register_model


class Fire(nn.Module):
    """Squeeze 1x1 then two parallel expands (1x1 and 3x3), concatenated on channels."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1: 3x3 stem of 64, eight Fire modules between three ceil-mode max pools."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Conv2d(512, num_classes, kernel_size=1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1))
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


@register_model(
    "squeezenet1_1",
    **classifier_meta(
        "squeezenet",
        "SqueezeNet 1.1 (torchvision layout; ImageNet acc@1 58.178 with its IMAGENET1K_V1 weights)",
        params=1_235_496,
        macs=349_151_936,
        pretrained_url="https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
        acc1=58.178,
    ),
)
def squeezenet1_1(num_classes: int = 1000) -> SqueezeNet:
    """SqueezeNet 1.1, torchvision's ``squeezenet1_1`` architecture."""
    return SqueezeNet(num_classes)
