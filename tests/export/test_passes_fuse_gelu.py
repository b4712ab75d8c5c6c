"""fuse_gelu: every exported GELU spelling becomes one Gelu/FastGelu node; look-alikes stay."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from onnx_graphs import (
    assert_deterministic,
    assert_idempotent,
    assert_valid,
    export_onnx,
    op_counts,
    random_inputs,
    run,
)
from torch import nn

from edgekit.export.passes.fuse_gelu import fuse_gelu


class Block(nn.Module):
    def __init__(self, act) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.act = act

    def forward(self, x):
        return self.act(self.conv(x)) + 1.0


def gelu_written_out(x):  # operand order differs from nn.GELU's export: (x * 0.5) * (1 + erf(x * (1/sqrt 2)))
    return (x * 0.5) * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))


@pytest.mark.parametrize("act,fused", [
    (nn.GELU(), "Gelu"), (nn.GELU(approximate="tanh"), "FastGelu"), (gelu_written_out, "Gelu"),
])
def test_gelu_spellings_fuse_and_keep_outputs(act, fused):
    before = export_onnx(Block(act if isinstance(act, nn.Module) else _Fn(act)), (1, 4, 6, 6))
    result = fuse_gelu(before)
    assert result.changed == 1 and len(result.details) == 1
    assert_valid(result.model)
    counts = op_counts(result.model)
    assert counts[fused] == 1 and counts["Add"] == 1 and not {"Erf", "Tanh", "Div", "Mul", "Pow"} & set(counts)
    for x in random_inputs(before):
        x = x * 4.0  # reach GELU's tails
        np.testing.assert_allclose(run(result.model, x)[0], run(before, x)[0], rtol=1e-5, atol=1e-5)
    assert_idempotent(fuse_gelu, before)
    assert_deterministic(fuse_gelu, before)


class _Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("fn", [
    lambda x: x * 0.5 * (1.0 + torch.erf(x / 2.0)),  # not sqrt(2)
    lambda x: x * (1.0 + torch.tanh(x)),  # not a GELU
])
def test_lookalikes_stay(fn):
    before = export_onnx(Block(_Fn(fn)), (1, 4, 6, 6))
    assert fuse_gelu(before).changed == 0


def test_gelu_whose_inner_value_is_read_elsewhere_stays():
    def shared(x):
        inner = torch.erf(x / math.sqrt(2.0))
        return x * 0.5 * (1.0 + inner) + inner

    before = export_onnx(Block(_Fn(shared)), (1, 4, 6, 6))
    assert fuse_gelu(before).changed == 0
