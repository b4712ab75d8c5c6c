"""Pixel input in TFLite: the ONNX fold (``fold_input_normalization``) lowered to a file that takes pixels, its
border as mean-pixel CONCATENATION strips. In float the lowered folded graph on pixels equals the original
ONNX graph on normalised images (real LiteRT against ONNX Runtime); in int8 the input is the camera byte
itself (scale 1/255, zero point -128) and XNNPACK runs the whole model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.export.passes.fold_input_normalization import PIXEL_RANGE, fold_input_normalization, pixel_prologue
from edgekit.export.tflite.calibrate import calibrate_ranges
from edgekit.export.tflite.inspect import xnnpack_partitions
from edgekit.export.tflite.pixel_input import to_pixels
from edgekit.export.tflite.quantize import quantize_graph
from edgekit.export.tflite.writer import write_tflite
from edgekit.export.tflite_export import lower_to_tflite

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 16

#: ONNX pads (top, left, bottom, right), kernel and stride of the first Conv for each case: ``same`` is the
#: padding TFLite's SAME gives (stride 1), ``pytorch`` what PyTorch gives a stride-2 3x3 conv (1 a side,
#: which SAME does not), ``asymmetric`` uneven sides, ``valid`` none, ``tall`` a 5x3 kernel.
CASES = {"same": ((1, 1, 1, 1), (3, 3), 1), "pytorch": ((1, 1, 1, 1), (3, 3), 2),
         "asymmetric": ((1, 2, 2, 1), (3, 3), 2), "valid": ((0, 0, 0, 0), (3, 3), 2), "tall": ((2, 1, 2, 1), (5, 3), 1)}


def model_with(case: str, seed: int = 0) -> onnx.ModelProto:
    """x -> Conv (``CASES[case]``) -> Relu -> Conv 3x3 -> y, and y's global mean: errors at the border reach
    both outputs."""
    pads, kernel, stride = CASES[case]
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, *kernel)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.2, (8, 8, 3, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b2")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=list(pads), strides=[stride] * 2,
                         kernel_shape=list(kernel)),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["y"], ["m"], name="mean"),
    ]
    graph = helper.make_graph(nodes, "first_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("m", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def pixel_images(count: int, seed: int = 0) -> np.ndarray:
    """uint8 NHWC images that use the whole byte range, including 0 and 255."""
    images = np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)
    images[0, 0, 0] = 0
    images[0, 0, 1] = 255
    return images


def normalized(pixels: np.ndarray) -> np.ndarray:
    """NCHW normalised images, as PyTorch models take them."""
    x = (pixels.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)
    return x.transpose(0, 3, 1, 2).astype(np.float32)


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.concatenate(parts) for parts in zip(*(session.run(None, {"x": image[None]}) for image in x),
                                                   strict=True)]


def run_float(content: bytes, images: np.ndarray) -> list[np.ndarray]:
    """Every output of an fp32 model over NHWC ``images`` (reference kernels), joined over images."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=content, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    index = it.get_input_details()[0]["index"]
    outputs = []
    for image in images:
        it.set_tensor(index, image[None].astype(np.float32))
        it.invoke()
        outputs.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
    return [np.concatenate(parts) for parts in zip(*outputs, strict=True)]


def lowered(case: str):
    folded = fold_input_normalization(model_with(case), MEAN, STD)
    assert folded.changed
    graph, _, _, transposes = lower_to_tflite(folded.model, "auto")
    assert transposes == 0
    return graph


@pytest.mark.parametrize("case", list(CASES))
def test_lowered_fold_on_pixels_equals_the_original_on_normalized_input(case):
    pixels = pixel_images(4)
    x = normalized(pixels)
    expected = run_onnx(model_with(case), x)
    actual = run_float(write_tflite(lowered(case)), to_pixels(x.transpose(0, 2, 3, 1), MEAN, STD, channel_axis=3))
    for e, a in zip(expected, actual, strict=True):
        e = e.transpose(0, 2, 3, 1)
        assert e.shape == a.shape
        assert np.abs(e).max() > 0.1  # the comparison is not between two near-zero tensors
        np.testing.assert_allclose(a, e, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("case", "concats"), [("same", 2), ("pytorch", 2), ("asymmetric", 2), ("valid", 0)])
def test_border_is_mean_pixel_strips_and_the_first_convolution_is_valid(case, concats):
    g = lowered(case)
    assert "PAD" not in g.histogram() and "PIXEL_FILL" not in g.histogram()
    assert g.histogram().get("CONCATENATION", 0) == concats
    assert {op.kind for op in g.consumers()[g.inputs[0]]} == ({"CONCATENATION"} if concats else {"CONV_2D"})
    assert g.shape(g.inputs[0]) == (1, SIZE, SIZE, 3)
    first = next(op for op in g.ops if op.kind == "CONV_2D")
    assert first.options["padding"] == "VALID"
    for op in g.ops:
        if op.kind == "CONCATENATION":
            assert "_pixel_fill" in op.outputs[0]  # what --per-layer recognises as the border
            for name in op.inputs:
                t = g.tensors[name]
                if t.is_constant:  # each strip holds channel c's mean pixel everywhere
                    np.testing.assert_array_equal(t.data, np.broadcast_to(np.float32(MEAN), t.shape))


def test_prologue_is_read_back_as_the_fold_wrote_it():
    prologue = pixel_prologue(fold_input_normalization(model_with("asymmetric"), MEAN, STD).model)
    assert prologue.pads == (1, 2, 2, 1) and prologue.conv == "conv1"
    np.testing.assert_allclose(prologue.mean, MEAN)
    np.testing.assert_allclose(prologue.std, STD)
    assert pixel_prologue(model_with("asymmetric")) is None


def test_to_pixels_inverts_preprocessing_along_the_channel_axis():
    from edgekit.data import preprocess

    pixels = pixel_images(2)
    nchw = preprocess(pixels, MEAN, STD)
    back = to_pixels(nchw, MEAN, STD, channel_axis=1)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back * 255, pixels.transpose(0, 3, 1, 2), atol=1e-3)


@pytest.mark.parametrize("case", ["pytorch", "same"])
def test_int8_input_is_the_pixel_byte_and_one_xnnpack_partition(case):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    g = lowered(case)
    calib = pixel_images(32, seed=1).astype(np.float32) / np.float32(255)
    ranges = calibrate_ranges(g, calib)
    ranges[g.inputs[0]] = PIXEL_RANGE
    content = write_tflite(quantize_graph(g, ranges))

    it = Interpreter(model_content=content, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    scale, zero_point = inp["quantization"]
    assert inp["dtype"] == np.int8
    assert scale == np.float32(1 / 255) and zero_point == -128
    # Quantizing a pixel in [0, 1] on the input grid gives back its byte exactly.
    every_byte = np.arange(256, dtype=np.float32) / np.float32(255)
    q = np.clip(np.round(every_byte / np.float32(scale)) + zero_point, -128, 127)
    np.testing.assert_array_equal(q, np.arange(256) - 128)
    assert xnnpack_partitions(content) == 1
