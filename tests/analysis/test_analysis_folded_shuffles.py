"""A .tflite whose channel shuffles edgekit folded: G1 judges the layers the fate-group pieces came from."""

import pytest
import torch
from torch import nn

from edgekit.analysis import analyze
from edgekit.analysis.costs import OpNode
from edgekit.analysis.folded_shuffles import regroup_split_layers
from edgekit.models.channel_shuffle import channel_shuffle


class Units(nn.Module):
    """Three ShuffleNetV2 stride-1 units (balanced 1x1 convolutions), then an unbalanced 1x1 conv (24 -> 96,
    23% above the G1 bound) whose shuffled halves feed two convolutions, so the fold cuts it into two
    24 -> 48 pieces (6% above: each piece alone would pass)."""

    def __init__(self, c=24, wide=96):
        super().__init__()
        half = c // 2
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(half, half, 1), nn.ReLU(), nn.Conv2d(half, half, 3, padding=1, groups=half),
                          nn.Conv2d(half, half, 1), nn.ReLU())
            for _ in range(3))
        self.widen = nn.Conv2d(c, wide, 1)
        self.heads = nn.ModuleList(nn.Conv2d(wide // 2, wide // 2, 1) for _ in range(2))

    def forward(self, x):
        x = self.stem(x)
        for branch in self.branches:
            x1, x2 = x.chunk(2, dim=1)
            x = channel_shuffle(torch.cat((x1, branch(x2)), 1), 2)
        a, b = channel_shuffle(self.widen(x), 2).chunk(2, dim=1)
        return self.heads[0](a) + self.heads[1](b)


def write_folded(path, metadata):
    from edgekit.export.onnx_export import simplify, torch_to_onnx
    from edgekit.export.passes import apply_shuffle_passes
    from edgekit.export.tflite.fold_shuffles import fold_shuffles
    from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
    from edgekit.export.tflite.writer import write_tflite

    torch.manual_seed(0)
    onnx_model, _, _ = apply_shuffle_passes(simplify(torch_to_onnx(Units().eval(), (1, 3, 16, 16))), "reshape")
    graph, _ = onnx_to_tflite_graph(onnx_model)
    assert fold_shuffles(graph)["routed_tensors"] > 0
    path.write_bytes(write_tflite(graph, metadata=metadata))
    return path


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("folded")
    return (analyze(write_folded(folder / "edgekit.tflite", {"shuffle_lowering": "folded"})),
            analyze(write_folded(folder / "other.tflite", {})))


def g1(analysis, severity):
    return [f for f in analysis.findings if f.guideline == "G1" and f.severity == severity]


def test_pieces_are_judged_as_the_layer_they_came_from(folded):
    analysis, _ = folded
    pieces = [layer.name for layer in analysis.layers if "_fate" in layer.name]
    assert len(pieces) > 8
    warned = g1(analysis, "warn")
    # only the truly unbalanced 24 -> 96 conv is flagged, once, under its own name, pointing at its pieces
    assert len(warned) == 1 and warned[0].figures["c1"] == 24 and warned[0].figures["c2"] == 96
    assert warned[0].message.startswith("widen.Conv_output_0: ")
    assert warned[0].layers == ["widen.Conv_output_0_fate0", "widen.Conv_output_0_fate1"]
    note = next(f for f in g1(analysis, "info") if "folded shuffle lowering" in f.message)
    assert note.figures["pieces"] == sum(1 for name in pieces if name in note.layers) > 0
    assert note.figures["extra_mac"] > 0 and "shuffle_lowering folded" in note.message


def test_costs_and_other_guidelines_stay_those_of_the_file(folded):
    analysis, plain = folded
    assert [layer.name for layer in analysis.layers] == [layer.name for layer in plain.layers]
    assert (analysis.mult_adds, analysis.memory_access) == (plain.mult_adds, plain.memory_access)
    assert [f for f in analysis.findings if f.guideline != "G1"] == [f for f in plain.findings if f.guideline != "G1"]
    names = {layer.name for layer in analysis.layers}
    for finding in analysis.findings:
        assert set(finding.layers) <= names


def test_files_without_edgekit_metadata_are_judged_op_by_op(folded):
    _, plain = folded
    warned = [name for f in g1(plain, "warn") for name in f.layers]
    assert len(warned) > 1 and all("_fate" in name and not name.startswith("widen") for name in warned)
    assert not any("folded shuffle lowering" in f.message for f in plain.findings)


def conv_piece(name, inputs, c_in, c_out, hw=(8, 8)):
    return OpNode(name=name, op_type="CONV_2D", kind="conv1x1", input_shapes=[(1, *hw, c_in)],
                  output_shapes=[(1, *hw, c_out)], params=c_in * c_out + c_out, weight_elements=c_in * c_out,
                  in_channels=c_in, out_channels=c_out, groups=1, kernel=(1, 1), out_hw=hw[0] * hw[1],
                  inputs=inputs, outputs=[name])


def test_regrouped_layer_has_the_cost_of_the_unsplit_convolution():
    nodes = [conv_piece(f"conv_out_fate{n}", ["x"], 24, c) for n, c in enumerate((3, 3, 6, 12))]
    nodes.append(conv_piece("other_fate0", ["y"], 24, 24))  # one piece: nothing was cut
    split = regroup_split_layers(nodes)
    layer = split.layers[0]
    assert [layer.name for layer in split.layers] == ["conv_out", "other_fate0"]
    assert (layer.kind, layer.in_channels, layer.out_channels) == ("conv1x1", 24, 24)
    assert layer.mult_adds == 64 * 24 * 24 and layer.memory_access == 64 * (24 + 24) + 24 * 24
    assert split.extra_memory_access == 3 * 64 * 24  # three more reads of the 8x8x24 input
    assert split.pieces == {"conv_out": [f"conv_out_fate{n}" for n in range(4)]}
    assert split.file_names(["conv_out", "other_fate0"]) == [*split.pieces["conv_out"], "other_fate0"]


def test_pieces_that_do_not_fit_together_are_left_alone():
    nodes = [conv_piece("a_fate0", ["x"], 24, 3), conv_piece("a_fate1", ["x"], 24, 3, hw=(4, 4))]
    assert regroup_split_layers(nodes) is None
