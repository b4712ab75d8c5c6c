"""The paper's cost formulas on hand-computed layers (ShuffleNetV2, section 2)."""

import math

import pytest
import torch
from torch import nn

from edgekit.analysis import analyze, conv1x1_mac, g1_lower_bound


def only(analysis, kind):
    layers = [layer for layer in analysis.layers if layer.kind == kind]
    assert len(layers) == 1, [(layer.name, layer.kind) for layer in analysis.layers]
    return layers[0]


def test_1x1_conv_mac_is_hw_c1_plus_c2_plus_c1c2():
    layer = only(analyze(nn.Conv2d(16, 32, 1, bias=False), input_shape=(1, 16, 8, 8)), "conv1x1")
    assert layer.mult_adds == 64 * 16 * 32 == 32768
    assert layer.memory_access == 64 * (16 + 32) + 16 * 32 == 3584
    assert layer.memory_access == conv1x1_mac(64, 16, 32)
    assert layer.intensity == pytest.approx(32768 / 3584)


def test_group_conv_mac_divides_only_the_weights_by_g():
    layer = only(analyze(nn.Conv2d(32, 32, 1, groups=4, bias=False), input_shape=(1, 32, 8, 8)), "group_conv")
    assert layer.groups == 4
    assert layer.mult_adds == 64 * 32 * 32 // 4 == 16384
    assert layer.memory_access == 64 * (32 + 32) + 32 * 32 // 4 == 4352 == conv1x1_mac(64, 32, 32, 4)


def test_depthwise_and_3x3_conv():
    dw = only(analyze(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), input_shape=(1, 8, 8, 8)), "depthwise_conv")
    assert dw.mult_adds == 64 * 8 * 9
    assert dw.memory_access == 512 + 512 + 72
    conv = only(analyze(nn.Conv2d(4, 6, 3, stride=2, padding=1), input_shape=(1, 4, 8, 8)), "conv")
    assert conv.mult_adds == 16 * 6 * 4 * 9  # 4x4 output
    assert conv.memory_access == 256 + 96 + 6 * 4 * 9  # input, output, weights (bias not counted)
    assert conv.params == 6 * 4 * 9 + 6


class AddConcat(nn.Module):
    def forward(self, x):
        y = torch.relu(x) + x
        return torch.cat([y, x], dim=1)


def test_elementwise_and_concat_count_tensors_read_and_written():
    analysis = analyze(AddConcat(), input_shape=(1, 4, 8, 8))
    by_type = {layer.op_type: layer for layer in analysis.layers}
    assert by_type["relu"].memory_access == 256 + 256 and by_type["relu"].mult_adds == 0
    assert by_type["add"].kind == "elementwise"
    assert by_type["add"].memory_access == 2 * 256 + 256
    assert by_type["cat"].kind == "concat" and by_type["cat"].memory_access == 2 * 256 + 512
    assert analysis.memory_access == 512 + 768 + 1024


def test_reshape_is_a_view_and_batchnorm_after_conv_is_folded():
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Flatten())
    analysis = analyze(model, input_shape=(1, 4, 2, 2))
    kinds = [layer.kind for layer in analysis.layers]
    assert kinds == ["conv1x1", "folded", "reshape"]
    assert [layer.memory_access for layer in analysis.layers][1:] == [0, 0]
    assert analysis.params == 4 * 4 + 4 + 8


def test_g1_bound_is_reached_at_equal_widths_only():
    hw = 28 * 28
    for c1, c2 in [(32, 32), (22, 44), (13, 78), (9, 108)]:
        flops = hw * c1 * c2
        bound = g1_lower_bound(hw, flops)
        mac = conv1x1_mac(hw, c1, c2)
        assert mac >= bound - 1e-6
        assert math.isclose(mac, bound) == (c1 == c2)


def test_kind_shares_add_up():
    analysis = analyze(AddConcat(), input_shape=(1, 4, 8, 8))
    assert sum(k.memory_access_pct for k in analysis.op_kinds) == pytest.approx(100.0)
    assert sum(k.count for k in analysis.op_kinds) == len(analysis.layers)
