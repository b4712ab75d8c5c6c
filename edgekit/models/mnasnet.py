"""MnasNet-B1 1.0 (Tan et al., CVPR 2019), key for key torchvision's ``mnasnet1_0``.

The module tree matches ``torchvision.models.mnasnet`` (``layers.N``, stacks ``layers.8``-``layers.13``
of ``_InvertedResidual`` with ``layers.M`` inside, ``classifier.1``), so torchvision's weight files load with
``--weights``. B1 is the paper's variant without squeeze-excite (A1 has it); torchvision ships B1.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgekit.models.blocks import classifier_meta
from edgekit.models.registry import register_model

#: PyTorch momentum for the paper's TensorFlow BatchNorm decay 0.9997.
BN_MOMENTUM = 1 - 0.9997


class _InvertedResidual(nn.Module):
    """Expand 1x1, depthwise kxk, project 1x1 (no activation), residual when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, expansion_factor: int) -> None:
        super().__init__()
        mid_ch = in_ch * expansion_factor
        self.apply_residual = in_ch == out_ch and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, mid_ch, 1, bias=False),
            nn.BatchNorm2d(mid_ch, momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(mid_ch, mid_ch, kernel_size, padding=kernel_size // 2, stride=stride, groups=mid_ch,
                      bias=False),
            nn.BatchNorm2d(mid_ch, momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(mid_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x) + x if self.apply_residual else self.layers(x)


def _stack(in_ch: int, out_ch: int, kernel_size: int, stride: int, exp_factor: int, repeats: int) -> nn.Sequential:
    first = _InvertedResidual(in_ch, out_ch, kernel_size, stride, exp_factor)
    rest = [_InvertedResidual(out_ch, out_ch, kernel_size, 1, exp_factor) for _ in range(1, repeats)]
    return nn.Sequential(first, *rest)


class MNASNet(nn.Module):
    """MnasNet 1.0: stem, separable conv, six stacks (channels 24/40/80/96/192/320), 1280-wide head."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        d = (32, 16, 24, 40, 80, 96, 192, 320)
        self.layers = nn.Sequential(
            nn.Conv2d(3, d[0], 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(d[0], momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(d[0], d[0], 3, padding=1, stride=1, groups=d[0], bias=False),
            nn.BatchNorm2d(d[0], momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(d[0], d[1], 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(d[1], momentum=BN_MOMENTUM),
            _stack(d[1], d[2], 3, 2, 3, 3),
            _stack(d[2], d[3], 5, 2, 3, 3),
            _stack(d[3], d[4], 5, 2, 6, 3),
            _stack(d[4], d[5], 3, 1, 6, 2),
            _stack(d[5], d[6], 5, 2, 6, 4),
            _stack(d[6], d[7], 3, 1, 6, 1),
            nn.Conv2d(d[7], 1280, 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(1280, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(x).mean([2, 3])
        return self.classifier(x)


@register_model(
    "mnasnet1_0",
    **classifier_meta(
        "mnasnet",
        "MnasNet 1.0 (torchvision layout; ImageNet acc@1 73.456 with its IMAGENET1K_V1 weights)",
        params=4_383_312,
        macs=314_415_872,
        width=1.0,
        pretrained_url="https://download.pytorch.org/models/mnasnet1.0_top1_73.512-f206786ef8.pth",
        acc1=73.456,
    ),
)
def mnasnet1_0(num_classes: int = 1000) -> MNASNet:
    """MnasNet 1.0, torchvision's ``mnasnet1_0`` architecture."""
    return MNASNet(num_classes)
