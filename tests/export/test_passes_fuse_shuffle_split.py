"""fuse_shuffle_split: a shuffle read only by a channel split becomes Reshape/Transpose/Split/Reshape."""

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

from edgekit.export.passes import canonicalize_channel_shuffle, find_channel_shuffles, fuse_shuffle_split

FUSABLE = [
    "view_g2_chunk", "permute_g2_chunk", "4d_g2_chunk", "view_g4_chunk", "permute_g4_chunk",
    "4d_g4_chunk", "view_g4_split", "view_g4_cat2_chunk", "batch2_view_g2_chunk",
]
# Read by something besides the split, not split at all, or split into pieces that are not whole groups.
NOT_FUSABLE = ["view_g2_two_readers", "4d_g4_two_readers", "view_g2_none", "permute_g4_none",
               "view_g4_chunk_uneven"]


@pytest.mark.parametrize("name", FUSABLE)
def test_shuffle_followed_by_chunk_is_fused(name):
    before = export_graph(name)
    result = fuse_shuffle_split(before)
    assert_valid(result.model)
    assert_same_outputs(before, result.model)
    assert result.name == "fuse_shuffle_split" and result.changed == len(result.details) == 1
    ops_before, ops_after = op_counts(before), op_counts(result.model)
    # The two Slices of the chunk are gone, one Split reads the transposed tensor, and the full shuffled
    # (N, C, H, W) tensor no longer exists, so no shuffle is left to find.
    assert ops_after["Slice"] == ops_before["Slice"] - 2
    assert readers_of_op(result.model, "Transpose") == {"Split": 1}
    assert find_channel_shuffles(result.model) == []


@pytest.mark.parametrize("name", NOT_FUSABLE)
def test_shuffle_not_only_read_by_a_whole_group_split_is_left_alone(name):
    before = export_graph(name)
    result = fuse_shuffle_split(before)
    assert result.changed == 0
    assert result.model.SerializeToString() == before.SerializeToString()


@pytest.mark.parametrize("name", ["megvii", "megvii_batch2"])
def test_megvii_after_canonicalisation_is_fused_back(name):
    before = export_graph(name)
    canonical = canonicalize_channel_shuffle(before).model
    result = fuse_shuffle_split(canonical)
    assert result.changed == 1
    assert_valid(result.model)
    assert_same_outputs(before, result.model)
    assert readers_of_op(result.model, "Transpose") == {"Split": 1}
    # Without canonicalisation first the Gathers are not a channel split: nothing to fuse.
    assert fuse_shuffle_split(before).changed == 0


def test_fused_lowering_keeps_the_split_output_names():
    before = export_graph("view_g2_chunk")
    slices = [n for n in before.graph.node if n.op_type == "Slice" and n.input[0].startswith("/Reshape")]
    after = fuse_shuffle_split(before).model
    produced = {o for n in after.graph.node for o in n.output}
    assert slices and all(s.output[0] in produced for s in slices)


@pytest.mark.parametrize("name", ["view_g4_split", "4d_g2_chunk"])
def test_idempotent_and_deterministic(name):
    assert_idempotent(fuse_shuffle_split, export_graph(name))
    assert_deterministic(fuse_shuffle_split, export_graph(name))
