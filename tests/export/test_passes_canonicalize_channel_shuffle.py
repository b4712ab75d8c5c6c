"""canonicalize_channel_shuffle: every spelling becomes Reshape(N,g,C/g,H,W)/Transpose/Reshape."""

from __future__ import annotations

import pytest
import torch
from onnx_graphs import (
    SHUFFLE_GRAPHS,
    MegviiBlock,
    assert_deterministic,
    assert_idempotent,
    assert_same_outputs,
    assert_valid,
    export_graph,
    export_onnx,
    op_counts,
)

from edgekit.export.passes import canonicalize_channel_shuffle, find_channel_shuffles
from edgekit.export.passes.graph_utils import attribute


@pytest.mark.parametrize("name", SHUFFLE_GRAPHS)
def test_canonical_graph_computes_the_same(name):
    before = export_graph(name)
    (found,) = find_channel_shuffles(before)
    result = canonicalize_channel_shuffle(before)
    assert_valid(result.model)
    assert_same_outputs(before, result.model)
    assert result.name == "canonicalize_channel_shuffle"
    assert result.changed == len(result.details) == (0 if found.canonical else 1)
    (after,) = find_channel_shuffles(result.model)
    assert after.canonical and after.groups == found.groups and after.shape == found.shape


@pytest.mark.parametrize("name", ["megvii", "megvii_batch2"])
def test_megvii_becomes_canonical_shuffle_in_half_the_channels_then_split(name):
    before = export_graph(name)
    result = canonicalize_channel_shuffle(before)
    ops = op_counts(result.model)
    assert ops["Gather"] == 0 and ops["Split"] == 1 and ops["Transpose"] == 1
    (match,) = find_channel_shuffles(result.model)
    assert match.groups == match.channels // 2 and match.canonical
    (split,) = [n for n in result.model.graph.node if n.op_type == "Split"]
    assert split.input[0] == match.outputs[0] and attribute(split, "axis") == 1
    assert "Megvii" in result.details[0] and "Split" in result.details[0]


def test_already_canonical_graph_comes_back_byte_identical():
    before = export_graph("view_g2_chunk")
    result = canonicalize_channel_shuffle(before)
    assert result.changed == 0
    assert result.model.SerializeToString() == before.SerializeToString()


@pytest.mark.parametrize("name", ["4d_g4_chunk", "megvii"])
def test_idempotent_and_deterministic(name):
    assert_idempotent(canonicalize_channel_shuffle, export_graph(name))
    assert_deterministic(canonicalize_channel_shuffle, export_graph(name))


def test_megvii_at_opset_11_gets_the_split_attribute_spelling():
    # Before opset 13 Split takes its sizes as an attribute; the pass must emit that spelling.
    torch.manual_seed(0)
    before = export_onnx(MegviiBlock(8), (1, 8, 3, 3), opset=11)
    result = canonicalize_channel_shuffle(before)
    assert result.changed == 1
    (split,) = [n for n in result.model.graph.node if n.op_type == "Split"]
    assert len(split.input) == 1 and list(attribute(split, "split")) == [4, 4]
    assert_valid(result.model)
    assert_same_outputs(before, result.model)
