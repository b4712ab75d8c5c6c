"""A plain PyTorch ResNet-18 (He et al. 2016, table 1), the "larger model" of benchmarks/export_time.py.

No torchvision: one block class and one network class configured by the paper's stage list, so the
benchmark measures edgekit on a model ten times ShuffleNetV2 1.0x's weights and 12x its multiply-adds
(11.7M parameters, 1.8 GMACs at 224x224) with dense 3x3 convolutions up to 512 channels. Used as a user
factory, ``benchmarks/resnet18.py:resnet18``; weights come from the caller (``deterministic_init``).
"""

from __future__ import annotations

from torch import Tensor, nn

#: (output channels, blocks, stride of the first block) per stage.
STAGES = ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut (a strided 1x1 projection where the shape changes)."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inp, oup, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(oup)
        self.conv2 = nn.Conv2d(oup, oup, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(oup)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inp != oup:
            self.downsample = nn.Sequential(nn.Conv2d(inp, oup, 1, stride, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + shortcut)


class ResNet(nn.Module):
    def __init__(self, stages=STAGES, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
        blocks, channels = [], 64
        for oup, repeats, stride in stages:
            for i in range(repeats):
                blocks.append(BasicBlock(channels, oup, stride if i == 0 else 1))
                channels = oup
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


def resnet18() -> ResNet:
    """ResNet-18 with PyTorch's default initialisation (the benchmark loads seeded, BatchNorm-calibrated weights)."""
    return ResNet()
