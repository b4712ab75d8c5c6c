import threading

import pytest
import torch

from edgekit.models import SHUFFLE_LOWERINGS, channel_shuffle, shuffle_lowering
from edgekit.models.channel_shuffle import current_shuffle_lowering


def _input(channels: int) -> torch.Tensor:
    return torch.randn(2, channels, 5, 3, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("channels", "groups"), [(8, 2), (12, 4), (116, 2), (232, 4), (6, 3)])
def test_both_lowerings_give_identical_tensors(channels, groups):
    x = _input(channels)
    outs = {}
    for name in SHUFFLE_LOWERINGS:
        with shuffle_lowering(name):
            outs[name] = channel_shuffle(x, groups)
    assert torch.equal(outs["view_transpose"], outs["reshape_permute"])


def test_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    # groups of [0 1 2] and [3 4 5] interleave to 0 3 1 4 2 5
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(torch.arange(8.0).reshape(1, 8, 1, 1), 4).flatten().tolist() == [
        0,
        2,
        4,
        6,
        1,
        3,
        5,
        7,
    ]


def test_default_is_torchvision_spelling_and_context_restores():
    assert SHUFFLE_LOWERINGS[0] == "view_transpose"
    assert current_shuffle_lowering() == "view_transpose"
    with shuffle_lowering("reshape_permute") as name:
        assert name == "reshape_permute"
        assert current_shuffle_lowering() == "reshape_permute"
    assert current_shuffle_lowering() == "view_transpose"


def test_lowering_does_not_leak_into_other_threads():
    seen = []
    with shuffle_lowering("reshape_permute"):
        t = threading.Thread(target=lambda: seen.append(current_shuffle_lowering()))
        t.start()
        t.join()
    assert seen == ["view_transpose"]


def test_unknown_lowering_lists_valid_ones():
    with pytest.raises(ValueError, match="view_transpose, reshape_permute"):
        with shuffle_lowering("gather"):
            pass


def test_groups_must_divide_channels():
    for name in SHUFFLE_LOWERINGS:
        with shuffle_lowering(name), pytest.raises(RuntimeError):
            channel_shuffle(torch.zeros(1, 7, 2, 2), 2)


class _Shuffle(torch.nn.Module):
    def forward(self, x):
        return channel_shuffle(x, 2)


def test_exported_graphs_differ_by_lowering():
    # The point of the switch: the same maths traces to different ops for the exporter.
    x = _input(8)

    def ops(name):
        with shuffle_lowering(name):
            program = torch.export.export(_Shuffle(), (x,))
        return {str(n.target) for n in program.graph.nodes if n.op == "call_function"}

    assert any("transpose" in op for op in ops("view_transpose"))
    assert not any("permute" in op for op in ops("view_transpose"))
    assert any("permute" in op for op in ops("reshape_permute"))
