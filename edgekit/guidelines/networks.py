"""The four guideline experiment networks of ShuffleNet V2 (section 2), each 10 identical blocks.

Widths are the paper's ARM configurations (x1, x2, x4 multiply them). The paper gives no input size and
draws the blocks of G3 and G4 only in its appendix, so these choices are edgekit's:

- G1: a block is two 1x1 convs, c1 -> c2 -> c1 (no activation), FLOPs 2*hw*c1*c2 per block.
- G2: a block is one 1x1 group conv c -> c with g groups ("10 pointwise group convolution layers").
- G3: every fragment is a 1x1 conv. k-fragment-series: k convs w -> w with w = round(c / sqrt(k)) so the
  block's FLOPs stay c^2 per pixel; k-fragment-parallel: k convs reading the block input, c -> c/k each,
  concatenated back to c (the same c^2).
- G4: the ResNet bottleneck at block width c: 1x1 c -> c/4, 3x3 c/4 -> c/4, 1x1 c/4 -> c, ReLU after each
  and a shortcut add before the last ReLU; the variants drop the ReLUs and/or the shortcut.

Each network's input is its first block's width at ``spatial`` x ``spatial``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

BLOCKS = 10


@dataclass(frozen=True)
class NetworkSpec:
    """One guideline network: which table and row, its width column, and how to build it."""

    guideline: str
    row: str
    column: str  # "x1", "c=64" ...
    config: str  # the channels it uses, e.g. "(32,32)" or "c=90, g=2"
    in_channels: int
    builder: object  # a zero-argument callable returning the nn.Module
    slug: str

    def build(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return self.builder().eval()


class _Pair(nn.Module):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c1, c2, 1, bias=False)
        self.conv2 = nn.Conv2d(c2, c1, 1, bias=False)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class _Series(nn.Module):
    def __init__(self, width: int, fragments: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[nn.Conv2d(width, width, 1, bias=False) for _ in range(fragments)])

    def forward(self, x):
        return self.convs(x)


class _Parallel(nn.Module):
    def __init__(self, width: int, fragments: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(width, width // fragments, 1, bias=False) for _ in range(fragments))

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class _Bottleneck(nn.Module):
    def __init__(self, width: int, relu: bool, shortcut: bool) -> None:
        super().__init__()
        mid = max(width // 4, 1)
        self.conv1 = nn.Conv2d(width, mid, 1, bias=False)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(mid, width, 1, bias=False)
        self.relu, self.shortcut = relu, shortcut

    def forward(self, x):
        act = torch.relu if self.relu else (lambda t: t)
        out = self.conv3(act(self.conv2(act(self.conv1(x)))))
        if self.shortcut:
            out = out + x
        return act(out)


def _stack(make_block) -> nn.Module:
    return nn.Sequential(*[make_block() for _ in range(BLOCKS)])


def g1_networks(multipliers=(1, 2, 4)) -> list[NetworkSpec]:
    """G1: c1:c2 = 1:1, 1:2, 1:6, 1:12 at the paper's ARM (c1, c2), times each multiplier."""
    from edgekit.guidelines.paper import G1

    out = []
    for row, (_gpu_pair, _gpu, (c1, c2), _arm) in G1.items():
        for m in multipliers:
            a, b = c1 * m, c2 * m
            out.append(NetworkSpec("G1", row, f"x{m}", f"({a},{b})", a, lambda a=a, b=b: _stack(lambda: _Pair(a, b)),
                                   f"g1_{row.replace(':', '-')}_x{m}"))
    return out


def g2_networks(multipliers=(1, 2, 4)) -> list[NetworkSpec]:
    """G2: 1x1 group convs with g = 1, 2, 4, 8 at the paper's ARM c, times each multiplier."""
    from edgekit.guidelines.paper import G2

    out = []
    base = G2[1][2]
    for g, (_gpu_c, _gpu, c, _arm) in G2.items():
        for m in multipliers:
            w, config = c * m, f"c={c * m}"
            if w % g:  # the paper's ARM c = 180 at g = 8 does not divide; take the multiple of g closest in FLOPs
                w = min((w // g * g, w // g * g + g), key=lambda v: abs(v * v / g - (base * m) ** 2))
                config = f"c={w} (paper {c * m})"
            out.append(NetworkSpec(
                "G2", f"g={g}", f"x{m}", config, w,
                lambda w=w, g=g: _stack(lambda: nn.Conv2d(w, w, 1, groups=g, bias=False)), f"g2_g{g}_x{m}"))
    return out


def g3_networks(widths=None) -> list[NetworkSpec]:
    """G3: 1, 2 and 4 fragments in series and in parallel at the paper's ARM c (64, 128, 256)."""
    from edgekit.guidelines.paper import G3, G3_ARM_C

    out = []
    for row in G3:
        fragments = int(row[0])
        for c in widths or G3_ARM_C:
            parallel = row.endswith("parallel")
            w = c if parallel else round(c / math.sqrt(fragments))
            config = f"{fragments}x {c}->{c // fragments}" if parallel else f"{fragments}x {w}->{w}"
            block = _Parallel if parallel else _Series
            out.append(NetworkSpec("G3", row, f"c={c}", config, w,
                                   lambda w=w, k=fragments, block=block: _stack(lambda: block(w, k)), f"g3_{row}_c{c}"))
    return out


def g4_networks(widths=None) -> list[NetworkSpec]:
    """G4: the ResNet bottleneck with/without ReLU and shortcut at the paper's c (32, 64, 128)."""
    from edgekit.guidelines.paper import G4, G4_C

    out = []
    for relu, shortcut in G4:
        row = f"ReLU {'yes' if relu else 'no'}, shortcut {'yes' if shortcut else 'no'}"
        for c in widths or G4_C:
            out.append(NetworkSpec(
                "G4", row, f"c={c}", f"{c}->{c // 4}->{c // 4}->{c}", c,
                lambda c=c, r=relu, s=shortcut: _stack(lambda: _Bottleneck(c, r, s)),
                f"g4_relu{int(relu)}_short{int(shortcut)}_c{c}"))
    return out


def all_networks(multipliers=(1, 2, 4)) -> list[NetworkSpec]:
    """Every guideline network, table by table. ``multipliers`` picks width columns (1, 2, 4 = x1, x2, x4;
    for G3/G4 the paper's c at the same positions)."""
    from edgekit.guidelines.paper import G3_ARM_C, G4_C

    index = {1: 0, 2: 1, 4: 2}
    g3 = [G3_ARM_C[index[m]] for m in multipliers]
    g4 = [G4_C[index[m]] for m in multipliers]
    return g1_networks(multipliers) + g2_networks(multipliers) + g3_networks(g3) + g4_networks(g4)
