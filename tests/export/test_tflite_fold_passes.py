"""The TFLite graph passes that fold constants into convolutions (``fold_add_into_bias``,
``fold_scale_into_next_conv``): each model goes through edgekit's ONNX path and the lowering (which runs both
passes), is written and run in LiteRT (XNNPACK and the builtin kernels) against ONNX Runtime on the same
ONNX graph; the op histogram shows what was folded, and a second run of each pass finds nothing."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.passes import apply_shuffle_passes
from edgekit.export.tflite.fold_add_into_bias import fold_add_into_bias
from edgekit.export.tflite.fold_scale_into_next_conv import fold_scale_into_next_conv
from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
from edgekit.export.tflite.inspect import xnnpack_partitions
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.litert_runtime import load_interpreter_module


def lower_and_compare(module: nn.Module, shape, rtol: float = 2e-6):
    """Lower ``module`` and compare LiteRT's output with ONNX Runtime's on the same ONNX graph (random input,
    random weights and biases). Returns the graph, its file bytes and the largest error relative to the output's
    largest magnitude."""
    torch.manual_seed(0)
    module = module.eval()
    for p in module.parameters():
        nn.init.uniform_(p, -1.0, 1.0)
    onnx_model = apply_shuffle_passes(simplify(torch_to_onnx(module, shape)), "reshape")[0]
    graph, _ = onnx_to_tflite_graph(onnx_model)
    content = write_tflite(graph)
    x = (np.random.default_rng(0).standard_normal(shape) * 2.0).astype(np.float32)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    file_x = x.transpose(0, 2, 3, 1).copy() if x.ndim == 4 else x
    interpreter_class, resolver, *_ = load_interpreter_module()
    worst = 0.0
    for kernels in ({}, {"experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES}):
        interpreter = interpreter_class(model_content=content, num_threads=1, **kernels)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], file_x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        if got.ndim == 4:
            got = got.transpose(0, 3, 1, 2)
        assert got.shape == expected.shape
        worst = max(worst, float(np.abs(got - expected).max() / max(1.0, np.abs(expected).max())))
    assert worst < rtol, graph.histogram()
    return graph, content, worst


def activations(graph, kind: str) -> list[str]:
    return [op.options.get("activation", "NONE") for op in graph.ops if op.kind == kind]


class SqueezeExcite(nn.Module):
    """MobileNetV3's block tail: depthwise conv, a hard-sigmoid squeeze-excite gate, the 1x1 projection."""

    def __init__(self, c=16, squeeze=8, out=12):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.project = nn.Conv2d(c, out, 1)

    def forward(self, x):
        x = torch.relu(self.dw(x))
        gate = nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.project(x * gate)


def test_hard_sigmoid_gate_folds_into_the_convolutions_around_it():
    graph, content, _ = lower_and_compare(SqueezeExcite(), (1, 16, 8, 8))
    histogram = graph.histogram()
    assert "ADD" not in histogram and histogram["MUL"] == 1, histogram  # only the gating MUL is left
    assert activations(graph, "CONV_2D") == ["RELU", "RELU6", "NONE"]  # fc1, fc2 (+3 in its bias), project
    assert xnnpack_partitions(content) == 1
    # idempotent: a second run of each pass finds nothing; deterministic: the same bytes
    assert fold_add_into_bias(graph).changed == 0 and fold_scale_into_next_conv(graph).changed == 0
    assert write_tflite(graph) == content
    gated = [op for op in graph.ops if op.kind == "MUL"][0].outputs[0]
    assert gated.endswith("_unscaled")  # it holds x * relu6(fc2 + 3), not the ONNX tensor's x * hardsigmoid


class Shifts(nn.Module):
    """A per-channel constant added, then a scalar subtracted, after a conv; then a ReLU."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.shift = nn.Parameter(torch.zeros(6, 1, 1))

    def forward(self, x):
        return torch.relu(self.conv(x) + self.shift - 0.5)


def test_per_channel_add_and_scalar_sub_join_the_bias():
    graph, _, _ = lower_and_compare(Shifts(), (1, 4, 8, 8))
    assert graph.histogram() == {"CONV_2D": 1}
    assert activations(graph, "CONV_2D") == ["RELU"]


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return nn.functional.relu6(self.fc(x) + 3.0)


def test_constant_after_fully_connected_joins_its_bias():
    graph, _, _ = lower_and_compare(Head(), (1, 16))
    assert graph.histogram() == {"FULLY_CONNECTED": 1}
    assert activations(graph, "FULLY_CONNECTED") == ["RELU6"]


class ScaledInputs(nn.Module):
    """A scalar scale before a conv, a per-channel scale before a depthwise conv with multiplier 2."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.dw = nn.Conv2d(6, 12, 3, padding=1, groups=6)
        self.scale = nn.Parameter(torch.ones(6, 1, 1))

    def forward(self, x):
        return self.dw(torch.relu(self.conv(x * 0.25)) * self.scale)


def test_scales_join_the_next_convolutions_weights():
    graph, _, _ = lower_and_compare(ScaledInputs(), (1, 4, 8, 8))
    assert graph.histogram() == {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1}


class NotFoldable(nn.Module):
    """Patterns the passes must leave alone: a conv output read twice, a constant minus a conv, a per-channel
    scale before a grouped conv (its filter sees one group's channels), a scale with two readers."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.scale = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x):
        y = self.a(x)
        y = (y + 3.0) * y
        z = 1.0 - self.b(y)
        s = z * self.scale
        return self.grouped(s) + s * 0.5


def test_patterns_that_do_not_fold_stay():
    graph, _, _ = lower_and_compare(NotFoldable(), (1, 4, 8, 8))
    histogram = graph.histogram()
    assert histogram.get("SUB") == 1 and histogram["CONV_2D"] == 3, histogram  # 1 - conv stays a SUB
    # y + 3 (y read twice), y * y, z * scale (read twice), s * 0.5 (read by the final ADD)
    assert histogram["ADD"] == 2 and histogram["MUL"] == 3, histogram


@pytest.mark.parametrize("multiplier", [1, 3])
def test_per_channel_scale_through_a_gate_into_a_depthwise_conv(multiplier):
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Conv2d(6, 6, 1)
            self.scale = nn.Parameter(torch.ones(6, 1, 1))
            self.dw = nn.Conv2d(6, 6 * multiplier, 3, padding=1, groups=6)

        def forward(self, x):
            gate = torch.relu(self.fc(x.mean((2, 3), keepdim=True))) * self.scale
            return self.dw(x * gate)

    graph, _, _ = lower_and_compare(Gate(), (1, 6, 8, 8))
    assert graph.histogram()["MUL"] == 1  # the gating MUL; the per-channel scale is in the depthwise filter
