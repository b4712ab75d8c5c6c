"""Two mobile segmentation nets: a small U-Net and a DeepLabV3 head on a MobileNetV2 backbone.

``unet_small``: U-Net (Ronneberger et al., MICCAI 2015) at mobile size. Four 2x2 max-pool downsamplings
with two 3x3 conv + BatchNorm + ReLU per level (widths 16/32/64/128, bottleneck 256), and four 2x2 stride-2
``ConvTranspose2d`` upsamplings, each concatenated with the encoder's skip of the same size. Differs from
the paper: "same" padding instead of valid (the output is the input size, no cropping), BatchNorm, widths
divided by 4, and 21 classes (PASCAL VOC). 1x3x256x256 in, 1x21x256x256 per-pixel class logits out.

``deeplabv3_mobilenet``: DeepLabV3 (Chen et al., arXiv 1706.05587) as its MobileNetV2 variant (Sandler et
al., section 6.3) builds it. A MobileNetV2 0.5x backbone at output stride 16 (the last two stages dilated
instead of strided), ASPP with a 1x1 branch, 3x3 branches at dilation 6/12/18 and an image-pooling branch
(global average, 1x1 conv, bilinear upsampling back), a 1x1 projection, a 3x3 conv, the 1x1 classifier,
and bilinear upsampling (``align_corners=False``) to the input size. Differs from the paper: 0.5x backbone
and 128 ASPP channels (256 in the paper) to stay mobile-sized. 1x3x256x256 in (the paper trains on 513
crops), 1x21x256x256 logits out. Neither model has published weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekit.models.blocks import IMAGENET_MEAN, IMAGENET_STD, ConvNormAct
from edgekit.models.mobilenetv2 import mobilenet_v2_features
from edgekit.models.registry import register_model

#: The 21 PASCAL VOC 2012 segmentation classes, in index order.
VOC_LABELS = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _double_conv(inp: int, out: int) -> nn.Sequential:
    return nn.Sequential(ConvNormAct(inp, out, 3), ConvNormAct(out, out, 3))


class UNet(nn.Module):
    """U-Net with ``widths`` per level (the last is the bottleneck); ConvTranspose upsampling, skip concat."""

    def __init__(self, num_classes: int = 21, widths: tuple[int, ...] = (16, 32, 64, 128, 256)) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        inp = 3
        for w in widths:
            self.down.append(_double_conv(inp, w))
            inp = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.decode = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(inp, w, kernel_size=2, stride=2))
            self.decode.append(_double_conv(2 * w, w))
            inp = w
        self.classifier = nn.Conv2d(inp, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, decode in zip(self.up, self.decode, strict=True):
            x = decode(torch.cat([up(x), skips.pop()], dim=1))
        return self.classifier(x)


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool, 1x1 conv + BN + ReLU, bilinear back to the feature size."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), ConvNormAct(inp, out, 1))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3, image pooling; concat; 1x1 projection."""

    def __init__(self, inp: int, rates: tuple[int, int, int] = (6, 12, 18), out: int = 128) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvNormAct(inp, out, 1)]
        branches += [ConvNormAct(inp, out, 3, dilation=r) for r in rates]
        branches.append(ASPPPooling(inp, out))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(ConvNormAct(len(branches) * out, out, 1), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabV3(nn.Module):
    """DeepLabV3: MobileNetV2 (``width_mult``, output stride 16) backbone, ASPP head, bilinear upsampling."""

    def __init__(self, num_classes: int = 21, width_mult: float = 0.5, aspp_channels: int = 128) -> None:
        super().__init__()
        layers = mobilenet_v2_features(width_mult, output_stride=16)
        self.backbone = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            ASPP(layers[-1].out_channels, out=aspp_channels),
            ConvNormAct(aspp_channels, aspp_channels, 3),
            nn.Conv2d(aspp_channels, num_classes, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        out = self.classifier(self.backbone(x))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def _segmentation_meta(family: str, description: str, *, params: int, macs: int) -> dict:
    return dict(
        family=family,
        width=None,
        task="segmentation",
        pure_cnn=True,
        params=params,
        macs=macs,
        input_shape=(1, 3, 256, 256),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        labels=VOC_LABELS,
        pretrained_url=None,
        description=description,
    )


@register_model(
    "unet_small",
    **_segmentation_meta("unet", "U-Net, widths 16-256, ConvTranspose upsampling; 21 VOC classes per pixel",
                         params=1_942_917, macs=3_053_453_312),
)
def unet_small(num_classes: int = 21) -> UNet:
    """The small U-Net: 1x3x256x256 in, per-pixel logits for ``num_classes`` out."""
    return UNet(num_classes)


@register_model(
    "deeplabv3_mobilenet",
    **_segmentation_meta("deeplabv3", "DeepLabV3 (ASPP, bilinear upsampling) on MobileNetV2 0.5x at stride 16; "
                         "21 VOC classes per pixel", params=1_308_117, macs=377_335_808),
)
def deeplabv3_mobilenet(num_classes: int = 21) -> DeepLabV3:
    """DeepLabV3 with a MobileNetV2 0.5x backbone: 1x3x256x256 in, per-pixel logits out."""
    return DeepLabV3(num_classes)
