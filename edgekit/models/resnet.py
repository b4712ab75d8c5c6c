"""ResNet-18 and ResNet-50 (He et al., CVPR 2016), key for key the networks torchvision ships.

The module tree matches ``torchvision.models.resnet`` (``conv1``, ``bn1``, ``layerN.M.convK``,
``downsample.0/1``, ``fc``), so torchvision's weight files load with ``--weights``. The bottleneck strides in
its 3x3 conv ("ResNet v1.5"), as torchvision's does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.models.blocks import classifier_meta
from edgekit.models.registry import register_model


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a residual (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet from its block type and the number of blocks in each of the four stages."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "resnet18",
    **classifier_meta(
        "resnet",
        "ResNet-18 (torchvision layout; ImageNet acc@1 69.758 with its IMAGENET1K_V1 weights)",
        params=11_689_512,
        macs=1_814_073_344,
        pretrained_url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        acc1=69.758,
    ),
)
def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18, torchvision's ``resnet18`` architecture."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


@register_model(
    "resnet50",
    **classifier_meta(
        "resnet",
        "ResNet-50 v1.5 (torchvision layout; ImageNet acc@1 80.858 with its IMAGENET1K_V2 weights)",
        params=25_557_032,
        macs=4_089_184_256,
        pretrained_url="https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
        acc1=80.858,
    ),
)
def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50, torchvision's ``resnet50`` architecture."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)
