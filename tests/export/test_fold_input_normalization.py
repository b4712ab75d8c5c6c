"""fold_input_normalization: ONNX Runtime gives the same outputs before and after on normalised input, the
pattern is matched exactly (one plain Conv reading the input), and the int8 quantizer keeps the prologue
in float and quantizes the pixels on the pixel grid."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.export.onnx_int8 import quantize_onnx_model
from edgekit.export.passes.fold_input_normalization import PIXELS, fold_input_normalization

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 16


def _init(name: str, array: np.ndarray, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def model_with(pads=(1, 1, 1, 1), bias: bool = True, group: int = 1, extra_reader: bool = False,
               channels: int = 3, seed: int = 0) -> onnx.ModelProto:
    """x -> Conv(3x3, stride 2, ``pads``, ``group``) -> Relu -> Conv 1x1 -> y; optionally a second reader of x."""
    rng = np.random.default_rng(seed)
    inits = [_init("w1", rng.normal(0, 0.3, (6, channels // group, 3, 3))),
             _init("w2", rng.normal(0, 0.3, (4, 6, 1, 1))), _init("b2", rng.normal(0, 0.1, 4))]
    conv_inputs = ["x", "w1"]
    if bias:
        inits.append(_init("b1", rng.normal(0, 0.1, 6)))
        conv_inputs.append("b1")
    nodes = [
        helper.make_node("Conv", conv_inputs, ["c1"], name="conv1", pads=list(pads), strides=[2, 2], group=group),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, None, None])]
    if extra_reader:
        nodes.append(helper.make_node("ReduceMean", ["x"], ["x_mean"], name="side", keepdims=1))
        outputs.append(helper.make_tensor_value_info("x_mean", TensorProto.FLOAT, [1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "first_conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, SIZE, SIZE])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model: onnx.ModelProto, x: np.ndarray, names: list[str] | None = None) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [np.concatenate(parts) for parts in
            zip(*(session.run(names, {"x": image[None]}) for image in x), strict=True)]


def pixel_images(count: int, seed: int = 0) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
    images[0, 0, 0] = 0
    images[0, 0, 1] = 255
    return images


def normalized(pixels: np.ndarray) -> np.ndarray:
    from edgekit.data import preprocess

    return preprocess(pixels, MEAN, STD)


def _nodes(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in model.graph.node}


@pytest.mark.parametrize(("pads", "bias"), [((1, 1, 1, 1), True), ((1, 1, 1, 1), False), ((0, 0, 0, 0), True),
                                            ((1, 0, 2, 1), True)])
def test_outputs_equal_before_and_after(pads, bias):
    model = model_with(pads, bias)
    result = fold_input_normalization(model, MEAN, STD)
    assert result.changed == 1 and result.model is not model
    onnx.checker.check_model(result.model, full_check=True)
    x = np.random.default_rng(1).normal(0, 1.5, (4, 3, SIZE, SIZE)).astype(np.float32)
    (before,), (after,) = run(model, x), run(result.model, x)
    assert before.shape == after.shape and np.abs(before).max() > 0.1
    np.testing.assert_allclose(after, before, atol=1e-4, rtol=0)


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 0, 0, 0), (1, 0, 2, 1)])
def test_prologue_nodes_and_unpadded_conv(pads):
    folded = fold_input_normalization(model_with(pads), MEAN, STD).model
    nodes = _nodes(folded)
    prologue = [n for n in folded.graph.node if n.name.startswith(PIXELS + "_")]
    expected = (["Pad"] if any(pads) else []) + ["Mul", "Add"]
    assert [n.op_type for n in prologue] == expected
    assert folded.graph.node[: len(prologue)] == prologue  # before the Conv, in execution order
    assert [n for n in folded.graph.node if "x" in n.input] == [prologue[0]]
    conv = nodes["conv1"]
    assert conv.input[0] == PIXELS == prologue[-1].output[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert list(attrs["pads"]) == [0, 0, 0, 0] and list(attrs["strides"]) == [2, 2]
    inits = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    if any(pads):
        top, left, bottom, right = pads
        np.testing.assert_array_equal(inits[prologue[0].input[1]], [0, 0, top, left, 0, 0, bottom, right])
    np.testing.assert_allclose(inits[nodes[PIXELS + "_mul"].input[1]].ravel(), STD, rtol=1e-6)
    np.testing.assert_allclose(inits[nodes[PIXELS + "_add"].input[1]].ravel(), MEAN, rtol=1e-6)
    assert "w1" not in inits and "b1" not in inits  # the replaced weights are dropped


def test_pixels_tensor_holds_the_pixels():
    pixels = pixel_images(2)
    folded = fold_input_normalization(model_with(), MEAN, STD).model
    folded.graph.output.append(helper.make_tensor_value_info(PIXELS, TensorProto.FLOAT, None))
    (value,) = run(folded, normalized(pixels), [PIXELS])
    inner = value[:, :, 1:-1, 1:-1]  # inside the padding
    np.testing.assert_allclose(inner * 255, pixels.transpose(0, 3, 1, 2), atol=1e-3)
    np.testing.assert_allclose(value[:, :, 0, 0], np.broadcast_to(np.float32(MEAN), (2, 3)), atol=1e-6)


@pytest.mark.parametrize(("kwargs", "mean", "std"), [
    ({"extra_reader": True}, MEAN, STD),
    ({"group": 3, "seed": 3}, MEAN, STD),
    ({}, (0.5,), (0.25,)),
    ({}, (0.1, 0.2, 0.3, 0.4), (1.0, 1.0, 1.0, 1.0)),
])
def test_unchanged_when_not_applicable(kwargs, mean, std):
    model = model_with(**kwargs)
    before = model.SerializeToString()
    result = fold_input_normalization(model, mean, std)
    assert result.changed == 0 and result.model is model and result.details
    assert model.SerializeToString() == before


def test_input_model_not_modified():
    model = model_with()
    before = model.SerializeToString()
    result = fold_input_normalization(model, MEAN, STD)
    assert result.changed == 1
    assert model.SerializeToString() == before


def _initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    (t,) = [t for t in model.graph.initializer if t.name == name]
    return numpy_helper.to_array(t)


def test_int8_prologue_is_one_per_channel_quantize_that_yields_the_pixel_bytes():
    folded = fold_input_normalization(model_with(), MEAN, STD).model
    calib = normalized(pixel_images(16, seed=2))
    quantized = quantize_onnx_model(folded, calib)

    nodes = _nodes(quantized)
    # The float Mul/Add are gone: one QuantizeLinear per channel reads the padded normalised input.
    assert PIXELS + "_mul" not in nodes and PIXELS + "_add" not in nodes
    assert nodes[PIXELS + "_pad"].op_type == "Pad" and nodes[PIXELS + "_pad"].input[0] == "x"
    q = nodes[PIXELS + "_quantize"]
    assert q.op_type == "QuantizeLinear" and q.input[0] == nodes[PIXELS + "_pad"].output[0]
    scale, zero_point = _initializer(quantized, q.input[1]), _initializer(quantized, q.input[2])
    np.testing.assert_allclose(scale, 1 / (255 * np.asarray(STD)), rtol=1e-6)
    np.testing.assert_array_equal(zero_point, np.round(255 * np.asarray(MEAN)).astype(np.uint8))
    (dq,) = [n for n in quantized.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0]]
    assert float(_initializer(quantized, dq.input[1])) == pytest.approx(1 / 255, rel=1e-6)
    assert int(_initializer(quantized, dq.input[2])) == 0

    # Every pixel byte survives: the quantized pixels are the bytes themselves.
    pixels = pixel_images(2, seed=4)
    quantized.graph.output.append(helper.make_tensor_value_info(q.output[0], TensorProto.UINT8, None))
    (codes,) = run(quantized, normalized(pixels), [q.output[0]])
    np.testing.assert_array_equal(codes[:, :, 1:-1, 1:-1], pixels.transpose(0, 3, 1, 2))
