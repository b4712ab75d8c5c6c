"""Layers the zoo families share, keyed like ``torchvision.ops.misc`` so torchvision's weight files load.

``ConvNormAct`` is torchvision's ``Conv2dNormActivation`` (children ``0`` conv, ``1`` BatchNorm, ``2``
activation), ``SqueezeExcitation`` its squeeze-excite block (``fc1``/``fc2``), ``make_divisible`` its
channel rounding. ``IMAGENET_*`` are the ImageNet-1k preprocessing and class names every classifier uses.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from edgekit.models.shufflenetv2 import IMAGENET_LABELS, IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_LABELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ConvNormAct",
    "SqueezeExcitation",
    "classifier_meta",
    "make_divisible",
]

Activation = Callable[..., nn.Module]


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``), never more than 10% down.

    The rounding of the TensorFlow MobileNet reference code, as torchvision's ``_make_divisible``.
    """
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias, "same" padding for odd kernels) + BatchNorm2d + optional activation.

    ``activation=None`` leaves the activation out (a linear bottleneck). ``bn_eps`` is BatchNorm's epsilon
    (MobileNetV3 uses 1e-3).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        activation: Activation | None = nn.ReLU,
        bn_eps: float = 1e-5,
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels, eps=bn_eps),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Squeeze-excite (Hu et al., CVPR 2018): global average pool, 1x1 conv down, activation, 1x1 conv up, gate.

    ``gate`` is ``nn.Sigmoid`` (EfficientNet, RegNet) or ``nn.Hardsigmoid`` (MobileNetV3, GhostNet).
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        activation: Activation = nn.ReLU,
        gate: Activation = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = gate()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


def classifier_meta(
    family: str,
    description: str,
    *,
    params: int,
    macs: int,
    input_size: int = 224,
    pure_cnn: bool = True,
    width: float | None = None,
    pretrained_url: str | None = None,
    acc1: float | None = None,
) -> dict:
    """Registry metadata of an ImageNet-1k classifier (see ``register_model``); ``params``/``macs`` are the
    literals ``edgekit models`` prints (``tests/models/test_zoo_registry.py`` recomputes them)."""
    meta = dict(
        family=family,
        width=width,
        task="classification",
        pure_cnn=pure_cnn,
        params=params,
        macs=macs,
        input_shape=(1, 3, input_size, input_size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        labels=IMAGENET_LABELS,
        pretrained_url=pretrained_url,
        description=description,
    )
    if acc1 is not None:
        meta["acc1"] = acc1
    return meta
