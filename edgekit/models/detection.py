"""``yolo_tiny``: a YOLOv3-tiny-style two-head detector (Redmon & Farhadi, "YOLOv3", arXiv 1804.02767).

Layer for layer the darknet ``yolov3-tiny.cfg`` layout at half its widths: 3x3 conv + BatchNorm +
LeakyReLU(0.1) with 2x2 max pools down to stride 32, a 1x1/3x3 head there, and a second head at stride 16
fed by a 1x1 conv, nearest-neighbour 2x upsampling (``F.interpolate``) and a concat with the stride-16
backbone feature. Each head ends in a 1x1 conv with bias giving 3 anchors x (4 box + 1 objectness + 80 COCO
classes) = 255 channels. Returns the raw head maps ``(stride16, stride32)``; decoding boxes and NMS belong to
the app. Differs from the darknet cfg: the 1024-channel 3x3 conv at stride 32 and the stride-1 max pool
(with its asymmetric padding) before it are left out, so the deepest width is 512 (4.0M instead of 8.9M parameters).
1x3x256x256 in (darknet uses 416): outputs 1x255x16x16 and 1x255x8x8. No published weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekit.models.blocks import IMAGENET_MEAN, IMAGENET_STD, ConvNormAct
from edgekit.models.registry import register_model

#: The 80 COCO detection classes, in the order YOLO's class channels use.
COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
ANCHORS_PER_SCALE = 3


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.1)


def _conv(inp: int, out: int, k: int) -> ConvNormAct:
    return ConvNormAct(inp, out, k, activation=_leaky)


class YoloTiny(nn.Module):
    """Backbone to stride 32, head at stride 32, upsampled route to a second head at stride 16."""

    def __init__(self, num_classes: int = 80, widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)) -> None:
        super().__init__()
        out_channels = ANCHORS_PER_SCALE * (5 + num_classes)
        w = widths
        # stride 2..16: conv then pool; the stride-16 conv output is the route the second head reads.
        self.stage16 = nn.Sequential(
            _conv(3, w[0], 3), nn.MaxPool2d(2, 2),
            _conv(w[0], w[1], 3), nn.MaxPool2d(2, 2),
            _conv(w[1], w[2], 3), nn.MaxPool2d(2, 2),
            _conv(w[2], w[3], 3), nn.MaxPool2d(2, 2),
            _conv(w[3], w[4], 3),
        )
        self.stage32 = nn.Sequential(nn.MaxPool2d(2, 2), _conv(w[4], w[5], 3), _conv(w[5], w[4], 1))
        self.head32 = nn.Sequential(_conv(w[4], w[5], 3), nn.Conv2d(w[5], out_channels, 1))
        self.route = _conv(w[4], w[3], 1)
        self.head16 = nn.Sequential(_conv(w[3] + w[4], w[4], 3), nn.Conv2d(w[4], out_channels, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c16 = self.stage16(x)
        c32 = self.stage32(c16)
        up = F.interpolate(self.route(c32), scale_factor=2, mode="nearest")
        return self.head16(torch.cat([up, c16], dim=1)), self.head32(c32)


@register_model(
    "yolo_tiny",
    family="yolo",
    width=None,
    task="detection",
    pure_cnn=True,
    params=4_000_654,
    macs=743_342_080,
    input_shape=(1, 3, 256, 256),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    labels=COCO_LABELS,
    pretrained_url=None,
    description="YOLOv3-tiny-style detector: raw 255-channel heads at strides 16 and 32 (COCO)",
)
def yolo_tiny(num_classes: int = 80) -> YoloTiny:
    """The two-head detector: 1x3x256x256 in, ``(1x255x16x16, 1x255x8x8)`` out for 80 classes."""
    return YoloTiny(num_classes)
