"""find_channel_shuffles: every spelling is found with the right g, nothing else is."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import NON_SHUFFLE_GRAPHS, SHUFFLE_GRAPHS, export_graph, shuffle_view

from edgekit.export.passes import find_channel_shuffles, shuffle_permutation


@pytest.mark.parametrize("channels,groups", [(8, 2), (12, 3), (16, 4), (116, 2), (24, 12)])
def test_shuffle_permutation_is_what_channel_shuffle_computes(channels, groups):
    x = torch.arange(channels, dtype=torch.float32).reshape(1, channels, 1, 1)
    expected = shuffle_view(x, groups).reshape(-1).numpy().astype(np.int64)
    np.testing.assert_array_equal(shuffle_permutation(channels, groups), expected)


@pytest.mark.parametrize("name", SHUFFLE_GRAPHS)
def test_every_spelling_is_found_once_with_its_groups(name):
    (match,) = find_channel_shuffles(export_graph(name))
    if name.startswith("megvii"):
        assert match.groups == match.channels // 2
        assert match.split_sizes == (match.channels // 2, match.channels // 2)
        assert "Megvii" in match.spelling and len(match.outputs) == 2 and len(match.nodes) == 5
        assert match.output == ", ".join(match.outputs)
        assert not match.canonical
    else:
        assert match.groups == (4 if "_g4_" in name else 2)
        assert match.split_sizes is None and len(match.outputs) == 1 and len(match.nodes) == 3
        assert match.canonical == (not name.startswith("4d"))
        assert ("4-D" in match.spelling) == name.startswith("4d")


@pytest.mark.parametrize("name", NON_SHUFFLE_GRAPHS)
def test_reshape_transpose_reshape_that_is_not_a_shuffle_is_not_matched(name):
    model = export_graph(name)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Reshape") == 2 and ops.count("Transpose") == 1  # the chain is there ...
    assert find_channel_shuffles(model) == []  # ... but does not compute a shuffle


def _chain(shape1, perm, shape2, *, input_shape=(1, 8, 2, 3), shapes_as_constants=False, extra_reader=False):
    """A hand-written Reshape -> Transpose -> Reshape graph."""
    nodes, inits = [], []
    for name, values in (("s1", shape1), ("s2", shape2)):
        array = numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)
        if shapes_as_constants:
            nodes.append(helper.make_node("Constant", [], [name], name=f"const_{name}", value=array))
        else:
            inits.append(array)
    nodes += [
        helper.make_node("Reshape", ["x", "s1"], ["a"], name="r1"),
        helper.make_node("Transpose", ["a"], ["b"], name="t", perm=perm),
        helper.make_node("Reshape", ["b", "s2"], ["y"], name="r2"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node("Neg", ["b"], ["z"], name="neg"))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))]
    graph = helper.make_graph(nodes, "chain", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shapes_from_constant_nodes_and_zero_minus_one_targets_are_understood():
    model = _chain([0, 4, 2, -1], [0, 2, 1, 3], [1, 8, 2, 3], shapes_as_constants=True)
    (match,) = find_channel_shuffles(model)
    assert (match.groups, match.canonical, match.outputs) == (4, False, ("y",))


def test_inverse_shuffle_is_shuffle_in_the_complementary_groups():
    (match,) = find_channel_shuffles(_chain([1, 2, 4, 2, 3], [0, 2, 1, 3, 4], [1, 8, 2, 3]))
    assert match.groups == 2 and match.canonical
    (match,) = find_channel_shuffles(_chain([1, 4, 2, 2, 3], [0, 2, 1, 3, 4], [1, 8, 2, 3]))
    assert match.groups == 4 and match.canonical


def test_identity_permutation_is_not_a_shuffle():
    assert find_channel_shuffles(_chain([1, 8, 6], [0, 1, 2], [1, 8, 2, 3])) == []


def test_chain_whose_middle_tensor_has_another_reader_is_left_alone():
    model = _chain([1, 2, 4, 2, 3], [0, 2, 1, 3, 4], [1, 8, 2, 3], extra_reader=True)
    assert find_channel_shuffles(model) == []


def test_dynamic_shapes_are_not_matched():
    model = _chain([1, 2, 4, 2, 3], [0, 2, 1, 3, 4], [1, 8, 2, 3])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert find_channel_shuffles(model) == []


def test_input_model_is_not_modified():
    model = export_graph("megvii")
    before = model.SerializeToString()
    find_channel_shuffles(model)
    onnx.checker.check_model(model)
    assert model.SerializeToString() == before
