"""apply_shuffle_passes: the three lowerings end to end, on every spelling and on a real-size stack."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from onnx_graphs import (
    NON_SHUFFLE_GRAPHS,
    SHUFFLE_GRAPHS,
    assert_same_outputs,
    assert_valid,
    export_graph,
    op_counts,
    random_inputs,
    readers_of_op,
    run,
)

from edgekit.errors import ExportError
from edgekit.export.passes import (
    SHUFFLE_LOWERINGS,
    apply_shuffle_passes,
    describe_shuffle_passes,
    find_channel_shuffles,
)


@pytest.mark.parametrize("lowering", SHUFFLE_LOWERINGS)
@pytest.mark.parametrize("name", SHUFFLE_GRAPHS + NON_SHUFFLE_GRAPHS)
def test_every_lowering_computes_the_same(name, lowering):
    before = export_graph(name)
    after, results, matches = apply_shuffle_passes(before, lowering)
    assert_valid(after)
    assert_same_outputs(before, after)
    assert len(matches) == (0 if name in NON_SHUFFLE_GRAPHS else 1)
    assert results[0].name == "canonicalize_channel_shuffle"
    assert [r.name for r in results][-1] == "slices_to_split"
    ops = op_counts(after)
    if name in NON_SHUFFLE_GRAPHS:
        assert all(r.changed == 0 for r in results)
        assert after.SerializeToString() == before.SerializeToString()
        return
    # torch.chunk's Slices that tile the channels are all gone, whichever lowering.
    assert ops["Slice"] == 0 and ops["Gather"] == 0
    fusable = (name.endswith(("_chunk", "_split")) and "uneven" not in name) or name.startswith("megvii")
    foldable = not name.startswith("megvii") and "cat2" not in name
    if lowering == "reshape":
        (match,) = find_channel_shuffles(after)
        assert match.canonical
    elif lowering == "concat" and foldable:
        assert ops["Transpose"] == 0
        assert readers_of_op(after, "Concat") == ({"Split": 1} if fusable else {"Reshape": 1})
    else:
        assert ops["Transpose"] == 1
        if fusable:
            assert readers_of_op(after, "Transpose") == {"Split": 1}


@pytest.mark.parametrize("lowering", SHUFFLE_LOWERINGS)
def test_lowering_twice_changes_nothing_the_second_time(lowering):
    once, _, _ = apply_shuffle_passes(export_graph("4d_g4_chunk"), lowering)
    twice, results, _ = apply_shuffle_passes(once, lowering)
    assert [r.changed for r in results] == [0] * len(results)
    assert twice.SerializeToString() == once.SerializeToString()


def test_unknown_lowering_names_the_options():
    with pytest.raises(ValueError, match="reshape, fused, concat") as info:
        apply_shuffle_passes(export_graph("view_g2_chunk"), "transpose")
    assert isinstance(info.value, ExportError)


def test_report_line_names_spellings_and_passes():
    model = export_graph("megvii")
    _, results, matches = apply_shuffle_passes(model, "fused")
    line = describe_shuffle_passes(matches, results, "fused")
    assert line.startswith("found 1 channel shuffle (1x reshape(3-D)")
    assert "lowered as fused: canonicalize_channel_shuffle 1, fuse_shuffle_split 1, slices_to_split 0" in line


_LOWER_IN_SUBPROCESS = textwrap.dedent(
    """
    import hashlib, sys
    import onnx
    from edgekit.export.passes import SHUFFLE_LOWERINGS, apply_shuffle_passes
    model = onnx.load(sys.argv[1])
    for lowering in SHUFFLE_LOWERINGS:
        out, _, _ = apply_shuffle_passes(model, lowering)
        print(lowering, hashlib.sha256(out.SerializeToString()).hexdigest())
    """
)


def test_output_bytes_do_not_depend_on_the_process(tmp_path):
    # String hashing (and so set order) changes per process; the passes must not depend on it.
    path = tmp_path / "stack.onnx"
    path.write_bytes(export_graph("stack_small_2").SerializeToString())
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", _LOWER_IN_SUBPROCESS, str(path)], env=env, capture_output=True, text=True,
            check=True,
        )
        digests.append(proc.stdout)
    assert digests[0] == digests[1] and digests[0].count("\n") == 3


def _check_stack(name: str, seeds) -> None:
    before = export_graph(name)
    blocks = len(find_channel_shuffles(before))
    lowered = {lowering: apply_shuffle_passes(before, lowering)[0] for lowering in SHUFFLE_LOWERINGS}
    for model in lowered.values():
        assert_valid(model)
    assert op_counts(lowered["concat"])["Transpose"] == 0
    assert op_counts(lowered["fused"])["Slice"] == 0
    assert readers_of_op(lowered["fused"], "Transpose") == {"Split": blocks - 1, "Reshape": 1}
    for x in random_inputs(before, seeds):
        (expected,) = run(before, x)
        for model in lowered.values():
            (got,) = run(model, x)
            np.testing.assert_array_equal(got, expected)
            (got_optimised,) = run(model, x, optimize=True)
            np.testing.assert_allclose(got_optimised, expected, rtol=1e-5, atol=1e-5)


def test_three_block_shufflenet_stack_116_channels_all_lowerings_agree():
    _check_stack("stack_116x28_3", seeds=(0, 1))


@pytest.mark.slow
def test_sixteen_block_shufflenet_stack_all_lowerings_agree():
    _check_stack("stack_116x28_16", seeds=(0, 1, 2, 3))
