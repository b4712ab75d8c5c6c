"""``delegate_uint8_edges``: a quantized graph with uint8 edges (edgekit's own quantizer, ``io="uint8"``) before and
after the pass, run in LiteRT: the same output bytes on XNNPACK (within one code on the builtin kernels), and
after the pass the one XNNPACK partition reads the model's input and writes its output (no edge op left outside it)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.tflite.calibrate import calibrate_ranges
from edgekit.export.tflite.delegate_uint8_edges import delegate_uint8_edges
from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
from edgekit.export.tflite.inspect import undelegated_ops
from edgekit.export.tflite.quantize import _add_uint8_io, quantize_graph
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.litert_runtime import load_interpreter_module


class SegmentationTail(nn.Module):
    """Convs at a quarter of the resolution, then a bilinear upsampling to the input size (DeepLabV3's end)."""

    def __init__(self, flatten: bool = False):
        super().__init__()
        self.flatten = flatten
        self.down = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.head = nn.Conv2d(8, 5, 1)

    def forward(self, x):
        y = nn.functional.interpolate(self.head(torch.relu(self.down(x))), scale_factor=4.0, mode="bilinear",
                                      align_corners=False)
        return y.flatten(1) if self.flatten else y


def quantized(module: nn.Module, shape=(1, 3, 32, 32)):
    torch.manual_seed(0)
    graph, _ = onnx_to_tflite_graph(simplify(torch_to_onnx(module.eval(), shape)))
    images = np.random.default_rng(1).uniform(-2, 2, (4, shape[2], shape[3], shape[1])).astype(np.float32)
    return quantize_graph(graph, calibrate_ranges(graph, images), io="uint8")


def quantized_without_pass(module: nn.Module):
    """What ``quantize_graph(io="uint8")`` gave before it ran ``delegate_uint8_edges``: a uint8 <-> int8
    QUANTIZE at each edge."""
    torch.manual_seed(0)
    graph, _ = onnx_to_tflite_graph(simplify(torch_to_onnx(module.eval(), (1, 3, 32, 32))))
    images = np.random.default_rng(1).uniform(-2, 2, (4, 32, 32, 3)).astype(np.float32)
    g = quantize_graph(graph, calibrate_ranges(graph, images), io="int8")
    _add_uint8_io(g)
    return g


def run(content: bytes, x: np.ndarray, xnnpack: bool) -> np.ndarray:
    interpreter_class, resolver, *_ = load_interpreter_module()
    kernels = {} if xnnpack else {"experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = interpreter_class(model_content=content, num_threads=1, **kernels)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def delegate_covers_the_model(content: bytes) -> bool:
    """One XNNPACK partition whose node reads every model input and writes exactly the model's outputs."""
    interpreter = load_interpreter_module()[0](model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    native = interpreter._interpreter  # the public API exposes no execution plan
    delegates = [i for i in range(native.NumNodes()) if native.NodeName(i) == "DELEGATE"]
    if len(delegates) != 1:
        return False
    inputs, outputs = set(native.NodeInputs(delegates[0])), set(native.NodeOutputs(delegates[0]))
    return ({d["index"] for d in interpreter.get_input_details()} <= inputs
            and outputs == {d["index"] for d in interpreter.get_output_details()})


@pytest.mark.parametrize("flatten", [False, True])
def test_uint8_edges_run_in_the_partition_with_the_same_bytes(flatten):
    module = SegmentationTail(flatten)
    graph = quantized_without_pass(module)
    before = write_tflite(graph)
    assert not delegate_covers_the_model(before)  # the builtin QUANTIZEs at both ends
    assert undelegated_ops(before) == ["QUANTIZE", "QUANTIZE"]
    result = delegate_uint8_edges(graph)
    after = write_tflite(graph)
    assert delegate_covers_the_model(after), graph.histogram()
    assert undelegated_ops(after) == []
    assert write_tflite(quantized(module)) == after  # quantize_graph runs the pass itself
    # the output edge moved in front of the RESIZE_BILINEAR (and the flatten's TRANSPOSE and RESHAPE): it
    # converts 8x8x5 values, not 32x32x5
    moved = [d for d in result.details if "moved" in d]
    assert len(moved) == (3 if flatten else 1), result.details
    resize = next(op for op in graph.ops if op.kind == "RESIZE_BILINEAR")
    assert graph.tensors[resize.inputs[0]].dtype == "uint8" and graph.tensors[resize.outputs[0]].dtype == "uint8"
    x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(run(after, x, True), run(before, x, True))
    # LiteRT's builtin kernels (what runs where XNNPACK does not) round bilinear ties of int8 and uint8 apart
    builtin = run(after, x, False).astype(int) - run(before, x, False).astype(int)
    assert np.abs(builtin).max() <= 1 and np.mean(builtin != 0) < 0.05
    # idempotent and deterministic
    again = copy.deepcopy(graph)
    assert delegate_uint8_edges(again).changed == 0 and write_tflite(again) == after


def test_int8_and_float_edges_are_left_alone():
    torch.manual_seed(0)
    graph, _ = onnx_to_tflite_graph(simplify(torch_to_onnx(SegmentationTail().eval(), (1, 3, 32, 32))))
    images = np.random.default_rng(1).uniform(-2, 2, (4, 32, 32, 3)).astype(np.float32)
    ranges = calibrate_ranges(graph, images)
    for io in ("int8", "float"):
        q = quantize_graph(graph, ranges, io=io)
        content = write_tflite(q)
        assert delegate_uint8_edges(q).changed == 0 and write_tflite(q) == content
