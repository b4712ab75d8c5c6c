"""``convnext_atto``: a mobile-sized ConvNeXt (Liu et al., "A ConvNet for the 2020s", CVPR 2022).

The ConvNeXt block as the paper's Figure 4 draws it: 7x7 depthwise conv, LayerNorm over channels, Linear to
4x channels, GELU, Linear back, layer scale, residual. The LayerNorm runs on channels-last data between two
``permute`` calls (the paper's reference implementation, and what most user code exports). Stem: 4x4
stride-4 conv + LayerNorm; downsampling: LayerNorm + 2x2 stride-2 conv; head: global average pool,
LayerNorm, Linear. Differs from ConvNeXt-T: widths 40/80/160/320 and depths 2/2/6/2 (timm's "atto" size,
3.7M instead of 28.6M parameters), no stochastic depth (an identity at inference), and layer scale
initialised to 0.1 instead of 1e-6, so untrained blocks are not identities and every op in them counts in
a parity check. Not key-compatible with torchvision's ``convnext_tiny``. 1x3x224x224 in.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.models.blocks import classifier_meta
from edgekit.models.registry import register_model

LAYER_SCALE_INIT = 0.1


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor: permute to NHWC, normalise the last axis, permute back."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    """dwconv 7x7 -> (NHWC) LayerNorm -> Linear 4x -> GELU -> Linear -> layer scale -> (NCHW) + input."""

    def __init__(self, dim: int, layer_scale: float = LAYER_SCALE_INIT) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.layer_scale * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt with ``depths`` blocks per stage at ``dims`` channels."""

    def __init__(self, depths: tuple[int, ...] = (2, 2, 6, 2), dims: tuple[int, ...] = (40, 80, 160, 320),
                 num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))]
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            if i > 0:
                layers.append(nn.Sequential(LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)))
            layers.append(nn.Sequential(*[CNBlock(dim) for _ in range(depth)]))
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.classifier = nn.Linear(dims[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x).mean([2, 3])
        return self.classifier(self.norm(x))


@register_model(
    "convnext_atto",
    **classifier_meta(
        "convnext",
        "ConvNeXt block design at atto size (widths 40-320, depths 2/2/6/2); LayerNorm over channels via permute",
        params=3_695_520,
        macs=547_332_480,
        pure_cnn=False,
    ),
)
def convnext_atto(num_classes: int = 1000) -> ConvNeXt:
    """The mobile-sized ConvNeXt: 1x3x224x224 in, ``num_classes`` logits out."""
    return ConvNeXt(num_classes=num_classes)
