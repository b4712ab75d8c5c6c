"""``mobilevit_xxs``: MobileViT-XXS (Mehta & Rastegari, "MobileViT", ICLR 2022).

The paper's Table 4 XXS network: a 3x3 stride-2 stem (16 channels, SiLU), MobileNetV2 blocks with
expansion 2, and MobileViT blocks at strides 8, 16 and 32 (48/64/80 channels, transformer widths
64/80/96, 2/4/3 transformer layers, 2x2 patches, 4 heads, MLP 2x), a 1x1 conv to 320 channels, global
average pool and a Linear classifier. A MobileViT block: 3x3 conv and 1x1 conv (local features), unfold
into 2x2 patches with reshape/transpose (as the authors' ml-cvnets code does, all 4-D), pre-norm
transformer layers (LayerNorm, multi-head attention as Linear + MatMul + Softmax + MatMul, LayerNorm,
Linear-SiLU-Linear MLP), a final LayerNorm, fold back, 1x1 conv, concat with the block input, 3x3 fusion
conv. Differs from the paper: no dropout (an identity at inference) and key names of our own (the
authors' checkpoints do not load unchanged). Multiply-add counts cover Conv2d and Linear layers only, not
the attention products. 1x3x256x256 in (the paper's resolution).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.models.blocks import ConvNormAct, classifier_meta
from edgekit.models.registry import register_model


class MV2Block(nn.Module):
    """MobileNetV2 inverted residual with SiLU instead of ReLU6 (MobileViT's MV2)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int = 2) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            ConvNormAct(inp, hidden, 1, activation=nn.SiLU),
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden, activation=nn.SiLU),
            ConvNormAct(hidden, oup, 1, activation=None),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, dim)`` with ``heads`` heads, spelled as Linear/MatMul/Softmax."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        # Split q/k/v before the head reshape so every tensor stays 4-D (mobile runtimes cap transposes there).
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: x + attention(LN(x)), then x + MLP(LN(x)) with SiLU."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.SiLU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTBlock(nn.Module):
    """Local 3x3 + 1x1 convs, unfold to patches, ``depth`` transformer layers, fold, 1x1, concat, 3x3 fuse."""

    def __init__(self, channels: int, dim: int, depth: int, heads: int = 4, patch: int = 2) -> None:
        super().__init__()
        self.patch = patch
        self.local_rep = nn.Sequential(
            ConvNormAct(channels, channels, 3, activation=nn.SiLU),
            nn.Conv2d(channels, dim, 1, bias=False),
        )
        self.transformer = nn.Sequential(*[TransformerLayer(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.conv_proj = ConvNormAct(dim, channels, 1, activation=nn.SiLU)
        self.fusion = ConvNormAct(2 * channels, channels, 3, activation=nn.SiLU)

    def unfold(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B * p * p, H * W / p^2, C)``: one sequence per pixel position in a patch."""
        b, c, h, w = x.shape
        p = self.patch
        nh, nw = h // p, w // p
        x = x.reshape(b * c * nh, p, nw, p).transpose(1, 2)  # (B*C*nh, nw, p, p)
        x = x.reshape(b, c, nh * nw, p * p).transpose(1, 3)  # (B, p*p, N, C)
        return x.reshape(b * p * p, nh * nw, c)

    def fold(self, x: Tensor, shape: tuple[int, int, int, int]) -> Tensor:
        """The inverse of ``unfold`` back to ``shape``."""
        b, c, h, w = shape
        p = self.patch
        nh, nw = h // p, w // p
        x = x.reshape(b, p * p, nh * nw, c).transpose(1, 3)  # (B, C, N, p*p)
        x = x.reshape(b * c * nh, nw, p, p).transpose(1, 2)  # (B*C*nh, p, nw, p)
        return x.reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        y = self.local_rep(x)
        shape = tuple(y.shape)
        y = self.fold(self.norm(self.transformer(self.unfold(y))), shape)
        return self.fusion(torch.cat([x, self.conv_proj(y)], dim=1))


class MobileViT(nn.Module):
    """MobileViT-XXS per the paper's Table 4."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, 16, 3, 2, activation=nn.SiLU)
        self.layer1 = MV2Block(16, 16, 1)
        self.layer2 = nn.Sequential(MV2Block(16, 24, 2), MV2Block(24, 24, 1), MV2Block(24, 24, 1))
        self.layer3 = nn.Sequential(MV2Block(24, 48, 2), MobileViTBlock(48, 64, 2))
        self.layer4 = nn.Sequential(MV2Block(48, 64, 2), MobileViTBlock(64, 80, 4))
        self.layer5 = nn.Sequential(MV2Block(64, 80, 2), MobileViTBlock(80, 96, 3))
        self.conv_1x1_exp = ConvNormAct(80, 320, 1, activation=nn.SiLU)
        self.classifier = nn.Linear(320, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        x = self.conv_1x1_exp(self.layer5(self.layer4(x)))
        return self.classifier(x.mean([2, 3]))


@register_model(
    "mobilevit_xxs",
    **classifier_meta(
        "mobilevit",
        "MobileViT-XXS (ICLR 2022 Table 4): MV2 blocks + transformer blocks on 2x2 patches; 256x256 input",
        params=1_272_024,
        macs=329_179_648,
        input_size=256,
        pure_cnn=False,
    ),
)
def mobilevit_xxs(num_classes: int = 1000) -> MobileViT:
    """MobileViT-XXS: 1x3x256x256 in, ``num_classes`` logits out."""
    return MobileViT(num_classes)
