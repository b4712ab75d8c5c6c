"""slices_to_split: sibling Slices that tile one axis become one Split; anything else stays."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import (
    assert_deterministic,
    assert_idempotent,
    assert_same_outputs,
    assert_valid,
    export_graph,
    op_counts,
)

from edgekit.export.passes import slices_to_split
from edgekit.export.passes.graph_utils import attribute

INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    "name", ["view_g2_chunk", "view_g4_split", "4d_g2_two_readers", "view_g4_chunk_uneven", "stack_small_2"]
)
def test_torch_chunks_become_splits(name):
    before = export_graph(name)
    result = slices_to_split(before)
    assert_valid(result.model)
    assert_same_outputs(before, result.model)
    assert op_counts(before)["Slice"] > 0 and op_counts(result.model)["Slice"] == 0
    assert op_counts(result.model)["Split"] == op_counts(before)["Split"] + result.changed
    assert result.changed == len(result.details) > 0


def _sliced(ranges, *, shape=(1, 8, 4, 4), extra=()):
    """Slices of one input, ``ranges`` = [(start, end, axis, step), ...], each slice a graph output."""
    nodes, inits, outputs = [], [], []
    for k, (start, end, axis, step) in enumerate(list(ranges) + list(extra)):
        names = [f"start{k}", f"end{k}", f"axis{k}", f"step{k}"]
        for name, value in zip(names, (start, end, axis, step), strict=True):
            inits.append(numpy_helper.from_array(np.array([value], dtype=np.int64), name))
        nodes.append(helper.make_node("Slice", ["x", *names], [f"y{k}"], name=f"slice{k}"))
        index = [slice(None)] * len(shape)
        index[axis] = slice(start, end, step)
        out_shape = np.zeros(shape)[tuple(index)].shape
        outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, list(out_shape)))
    graph = helper.make_graph(
        nodes, "slices", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_open_ended_and_negative_bounds_are_normalised():
    before = _sliced([(-3, INT64_MAX, 1, 1), (0, 2, 1, 1), (2, -3, 1, 1)])
    result = slices_to_split(before)
    assert result.changed == 1
    (split,) = result.model.graph.node
    assert split.op_type == "Split" and attribute(split, "axis") == 1
    assert list(split.output) == ["y1", "y2", "y0"]
    sizes = [i for i in result.model.graph.initializer if i.name == split.input[1]][0]
    assert numpy_helper.to_array(sizes).tolist() == [2, 3, 3]
    assert_valid(result.model)
    assert_same_outputs(before, result.model)


@pytest.mark.parametrize(
    "ranges",
    [
        [(0, 4, 1, 1), (2, 8, 1, 1)],  # overlap
        [(0, 3, 1, 1), (4, 8, 1, 1)],  # gap
        [(0, 4, 1, 1), (4, 7, 1, 1)],  # does not reach the end
        [(0, 8, 1, 2), (1, 8, 1, 2)],  # strided (even/odd channels)
        [(0, 8, 1, 1)],  # a single slice is a copy, not a split
        [(0, 4, 1, 1), (4, 8, 1, 1), (0, 4, 1, 1)],  # a duplicate piece
    ],
)
def test_slices_that_do_not_tile_are_left_alone(ranges):
    before = _sliced(ranges)
    result = slices_to_split(before)
    assert result.changed == 0
    assert result.model.SerializeToString() == before.SerializeToString()


def test_only_the_axis_whose_slices_tile_is_rewritten():
    before = _sliced([(0, 4, 1, 1), (4, 8, 1, 1)], extra=[(1, 3, 2, 1)])
    result = slices_to_split(before)
    assert result.changed == 1
    assert op_counts(result.model) == {"Split": 1, "Slice": 1}
    assert_same_outputs(before, result.model)


def test_idempotent_and_deterministic():
    assert_idempotent(slices_to_split, export_graph("view_g2_two_readers"))
    assert_deterministic(slices_to_split, export_graph("view_g2_two_readers"))
