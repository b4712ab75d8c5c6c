"""Cross-checks against published figures, and the same network analysed in PyTorch, ONNX and TFLite."""

import pytest
import torch
from torch import nn

from edgekit.analysis import analyze
from edgekit.models.registry import count_macs


def test_shufflenet_v2_x1_0_matches_table_8_and_torchvision():
    analysis = analyze("shufflenet_v2_x1_0")
    assert analysis.params == 2_278_604  # torchvision
    assert analysis.mult_adds == pytest.approx(146e6, rel=0.01)  # the paper's Table 8: 146 MFLOPs
    assert analysis.input_shapes == [[1, 3, 224, 224]]


def test_shufflenet_v2_x0_5_matches_table_8():
    assert analyze("shufflenet_v2_x0_5").mult_adds == pytest.approx(41e6, rel=0.03)  # Table 8: 41 MFLOPs


class Mixed(nn.Module):
    """Dense, group and depthwise convolutions, a split, an add and a concat."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(8, 16, 1)
        self.b = nn.Conv2d(16, 16, 1, groups=4)
        self.c = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y = self.b(y)
        left, right = y.chunk(2, dim=1)
        z = torch.cat([left + self.c(right), right], dim=1)
        return self.fc(z.mean((2, 3)))


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    from edgekit.export.onnx_export import simplify, torch_to_onnx
    from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
    from edgekit.export.tflite.writer import write_tflite

    folder = tmp_path_factory.mktemp("mixed")
    torch.manual_seed(0)
    model = Mixed().eval()
    onnx_model = simplify(torch_to_onnx(model, (1, 8, 6, 6)))
    (folder / "mixed.onnx").write_bytes(onnx_model.SerializeToString())
    graph, _ = onnx_to_tflite_graph(onnx_model)
    (folder / "mixed.tflite").write_bytes(write_tflite(graph, description="test", metadata={}))
    return model, folder


def test_pytorch_onnx_and_tflite_agree_on_mult_adds(mixed_files):
    model, folder = mixed_files
    torch_analysis = analyze(model, input_shape=(1, 8, 6, 6))
    onnx_analysis = analyze(folder / "mixed.onnx")
    tflite_analysis = analyze(folder / "mixed.tflite")
    assert torch_analysis.mult_adds == count_macs(model, (1, 8, 6, 6))
    assert onnx_analysis.mult_adds == torch_analysis.mult_adds
    assert tflite_analysis.mult_adds == torch_analysis.mult_adds
    for analysis in (torch_analysis, onnx_analysis, tflite_analysis):
        kinds = {layer.kind for layer in analysis.layers}
        assert {"conv1x1", "group_conv", "depthwise_conv", "fc", "concat"} <= kinds, (analysis.source_kind, kinds)
        assert analysis.other_ops == {}
    group = next(layer for layer in tflite_analysis.layers if layer.kind == "group_conv")
    assert (group.in_channels, group.out_channels, group.groups) == (16, 16, 4)
