"""fold_shuffle_into_concat: shuffle of a g-way channel Concat becomes an interleaving Concat."""

from __future__ import annotations

import pytest
from onnx_graphs import (
    assert_deterministic,
    assert_idempotent,
    assert_same_outputs,
    assert_valid,
    export_graph,
    op_counts,
    readers_of_op,
)

from edgekit.export.passes import fold_shuffle_into_concat
from edgekit.export.passes.graph_utils import attribute

WITH_SPLIT = ["view_g2_chunk", "permute_g4_chunk", "4d_g2_chunk", "4d_g4_chunk", "view_g4_split",
              "batch2_view_g2_chunk"]
WITHOUT_SPLIT = ["view_g2_none", "permute_g4_none", "4d_g4_none", "view_g2_two_readers",
                 "permute_g4_two_readers", "view_g4_chunk_uneven"]


def _interleaving_concat(model):
    (concat,) = [n for n in model.graph.node if n.op_type == "Concat"]
    assert attribute(concat, "axis") == 2
    return concat


@pytest.mark.parametrize("name", WITH_SPLIT + WITHOUT_SPLIT)
def test_shuffle_of_concat_is_an_interleave_without_transpose(name):
    before = export_graph(name)
    result = fold_shuffle_into_concat(before)
    assert_valid(result.model)
    assert_same_outputs(before, result.model)
    assert result.name == "fold_shuffle_into_concat" and result.changed == len(result.details) == 1
    ops = op_counts(result.model)
    groups = 4 if "_g4_" in name else 2
    assert ops["Transpose"] == 0 and ops["Unsqueeze"] == groups
    concat = _interleaving_concat(result.model)
    assert len(concat.input) == groups
    if name in WITH_SPLIT:  # the chunk after the shuffle is cut from the interleaved tensor directly
        assert readers_of_op(result.model, "Concat") == {"Split": 1}
        assert ops["Slice"] == op_counts(before)["Slice"] - 2
    else:
        assert readers_of_op(result.model, "Concat") == {"Reshape": 1}


@pytest.mark.parametrize("name", ["megvii", "spatial_transpose", "swap_channel_blocks", "view_g4_cat2_chunk"])
def test_no_concat_of_groups_means_no_change(name):
    before = export_graph(name)
    result = fold_shuffle_into_concat(before)
    assert result.changed == 0
    assert result.model.SerializeToString() == before.SerializeToString()


@pytest.mark.parametrize("name", ["view_g2_chunk", "4d_g4_none"])
def test_idempotent_and_deterministic(name):
    assert_idempotent(fold_shuffle_into_concat, export_graph(name))
    assert_deterministic(fold_shuffle_into_concat, export_graph(name))
