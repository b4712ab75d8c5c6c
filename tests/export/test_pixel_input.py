"""Pixel input: the ``(x - mean) / std`` normalisation folded into the first convolutions of the NHWC
graph. In float the folded graph on pixels equals the original on normalised images (real LiteRT); in
int8 the input is the camera byte itself (scale 1/255, zero point -128) and XNNPACK runs the whole model."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.export.tflite.calibrate import calibrate_ranges
from edgekit.export.tflite.inspect import xnnpack_partitions
from edgekit.export.tflite.ir import Graph, Op
from edgekit.export.tflite.pixel_input import (
    PIXEL_RANGE,
    PixelInputNotApplicable,
    take_pixel_input,
    to_pixels,
)
from edgekit.export.tflite.quantize import quantize_graph
from edgekit.export.tflite.writer import write_tflite

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 16


def _conv(g: Graph, rng, x: str, out_c: int, k: tuple[int, int], name: str, stride=(1, 1), padding="SAME",
          activation="RELU") -> str:
    n, h, w, in_c = g.shape(x)
    if padding == "SAME":
        oh, ow = -(-h // stride[0]), -(-w // stride[1])
    else:
        oh, ow = (h - k[0]) // stride[0] + 1, (w - k[1]) // stride[1] + 1
    weights = rng.normal(0, (2 / (k[0] * k[1] * in_c)) ** 0.5, (out_c, *k, in_c)).astype(np.float32)
    filt = g.add_constant(name + "_filter", weights)
    bias = g.add_constant(name + "_bias", rng.normal(0, 0.1, out_c).astype(np.float32))
    out = g.add_tensor(name, (n, oh, ow, out_c))
    g.ops.append(Op("CONV_2D", [x, filt, bias], [out],
                    {"stride": stride, "padding": padding, "activation": activation}, name))
    return out


def _pad(g: Graph, x: str, paddings) -> str:
    n, h, w, c = g.shape(x)
    (t, b), (left, r) = paddings
    out = g.add_tensor(x + "_padded", (n, h + t + b, w + left + r, c))
    g.ops.append(Op("PAD", [x, g.int32_constant(x + "_paddings", [[0, 0], [t, b], [left, r], [0, 0]])], [out]))
    return out


def _head(g: Graph, rng, x: str) -> None:
    """A second convolution and a global mean, so errors at the border reach the output."""
    y = _conv(g, rng, x, 8, (3, 3), "conv2", activation="RELU")
    n, _, _, c = g.shape(y)
    m = g.add_tensor("mean", (n, 1, 1, c))
    g.ops.append(Op("MEAN", [y, g.int32_constant("mean_axes", [1, 2])], [m], {"keep_dims": True}))
    g.outputs += [y, m]


def graph_with(first: str, seed: int = 0) -> Graph:
    """A small fp32 NHWC graph whose input is read as ``first`` says:

    ``pad``: PAD (asymmetric) -> VALID CONV_2D stride 2; ``same``: SAME CONV_2D stride 2; ``same_5x3``:
    SAME with a non-square kernel; ``valid``: VALID (no padding); ``two``: a SAME and a PAD+VALID conv,
    added; ``add``: the input also goes into an ADD; ``depthwise``: a DEPTHWISE_CONV_2D; ``pad_two``: one
    PAD read by two convolutions.
    """
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_tensor("input", (1, SIZE, SIZE, 3))
    g.inputs.append(x)
    if first == "pad":
        y = _conv(g, rng, _pad(g, x, ((1, 2), (2, 1))), 8, (3, 3), "conv1", stride=(2, 2), padding="VALID")
    elif first == "same":
        y = _conv(g, rng, x, 8, (3, 3), "conv1", stride=(2, 2))
    elif first == "same_5x3":
        y = _conv(g, rng, x, 8, (5, 3), "conv1")
    elif first == "valid":
        y = _conv(g, rng, x, 8, (3, 3), "conv1", stride=(2, 2), padding="VALID")
    elif first == "two":
        a = _conv(g, rng, x, 8, (3, 3), "conv1a", stride=(2, 2))
        b = _conv(g, rng, _pad(g, x, ((0, 1), (0, 1))), 8, (3, 3), "conv1b", stride=(2, 2), padding="VALID")
        y = g.add_tensor("sum", g.shape(a))
        g.ops.append(Op("ADD", [a, b], [y]))
    elif first == "add":
        a = _conv(g, rng, x, 3, (3, 3), "conv1")
        y = g.add_tensor("sum", g.shape(a))
        g.ops.append(Op("ADD", [a, x], [y]))
    elif first == "depthwise":
        w = g.add_constant("dw_filter", rng.normal(0, 0.4, (1, 3, 3, 3)).astype(np.float32))
        b = g.add_constant("dw_bias", rng.normal(0, 0.1, 3).astype(np.float32))
        y = g.add_tensor("dw", (1, SIZE, SIZE, 3))
        g.ops.append(Op("DEPTHWISE_CONV_2D", [x, w, b], [y],
                        {"stride": (1, 1), "padding": "SAME", "depth_multiplier": 1}))
    elif first == "pad_two":
        p = _pad(g, x, ((1, 1), (1, 1)))
        a = _conv(g, rng, p, 8, (3, 3), "conv1a", stride=(2, 2), padding="VALID")
        b = _conv(g, rng, p, 8, (3, 3), "conv1b", stride=(2, 2), padding="VALID")
        y = g.add_tensor("sum", g.shape(a))
        g.ops.append(Op("ADD", [a, b], [y]))
    else:
        raise ValueError(first)
    _head(g, rng, y)
    return g


def pixel_images(count: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """uint8 NHWC images that use the whole byte range, including 0 and 255."""
    images = np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    images[0, 0, 0] = 0
    images[0, 0, 1] = 255
    return images


def normalized(pixels: np.ndarray) -> np.ndarray:
    return ((pixels.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)


def run_float(content: bytes, images: np.ndarray) -> list[np.ndarray]:
    """Every output of an fp32 model over ``images`` (reference kernels), joined over images."""
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


def fold(first: str) -> tuple[Graph, Graph, object]:
    original = graph_with(first)
    folded = graph_with(first)
    return original, folded, take_pixel_input(folded, MEAN, STD)


@pytest.mark.parametrize("first", ["pad", "same", "same_5x3", "valid", "two"])
def test_folded_graph_on_pixels_equals_original_on_normalized_input(first):
    original, folded, result = fold(first)
    pixels = pixel_images(4)
    x = normalized(pixels)
    expected = run_float(write_tflite(original), x)
    actual = run_float(write_tflite(folded), to_pixels(x, MEAN, STD, channel_axis=3))
    for e, a in zip(expected, actual, strict=True):
        assert e.shape == a.shape
        assert np.abs(e).max() > 0.1  # the comparison is not between two near-zero tensors
        np.testing.assert_allclose(a, e, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("first", "convolutions", "padded", "concats"),
                         [("pad", 1, 1, 2), ("same", 1, 1, 2), ("valid", 1, 0, 0), ("two", 2, 2, 4)])
def test_fold_rewrites_padding_as_mean_strips(first, convolutions, padded, concats):
    _, g, result = fold(first)
    assert len(result.convolutions) == convolutions and result.padded == padded
    assert "PAD" not in g.histogram()
    assert g.histogram().get("CONCATENATION", 0) == concats
    readers = {op.kind for op in g.consumers()[g.inputs[0]]}
    assert readers == ({"CONCATENATION"} if padded else {"CONV_2D"})
    for op in g.ops:
        if op.kind == "CONV_2D":
            assert op.options["padding"] == "VALID" or op.inputs[0] != g.inputs[0]
        if op.kind == "CONCATENATION":
            for name in op.inputs:
                t = g.tensors[name]
                if t.is_constant:  # each strip holds channel c's mean pixel everywhere
                    np.testing.assert_array_equal(t.data, np.broadcast_to(np.float32(MEAN), t.shape))


def test_to_pixels_inverts_preprocessing_along_the_channel_axis():
    from edgekit.data import preprocess

    pixels = pixel_images(2)
    nchw = preprocess(pixels, MEAN, STD)
    back = to_pixels(nchw, MEAN, STD, channel_axis=1)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back * 255, pixels.transpose(0, 3, 1, 2), atol=1e-3)


@pytest.mark.parametrize("first", ["add", "depthwise", "pad_two"])
def test_graph_untouched_when_the_input_has_other_readers(first):
    g = graph_with(first)
    before = write_tflite(g)
    with pytest.raises(PixelInputNotApplicable):
        take_pixel_input(g, MEAN, STD)
    assert write_tflite(g) == before


@pytest.mark.parametrize(("mean", "std"), [((0.5,), (0.25,)), ((0.1, 0.2, 0.3, 0.4), (1, 1, 1, 1)),
                                           (MEAN, (0.2, 0.0, 0.2))])
def test_graph_untouched_for_mismatched_or_invalid_normalisation(mean, std):
    g = graph_with("pad")
    before = write_tflite(g)
    with pytest.raises(PixelInputNotApplicable):
        take_pixel_input(g, mean, std)
    assert write_tflite(g) == before


def _pad_then_conv(pads, padding: str) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add_tensor("input", (1, SIZE, SIZE, 3))
    g.inputs.append(x)
    g.outputs.append(_conv(g, rng, _pad(g, x, pads), 8, (3, 3), "conv1", padding=padding))
    return g


@pytest.mark.parametrize("pads", [((0, 0), (0, 0)), ((1, 1), (1, 1))])
def test_pad_before_a_same_convolution_is_not_applicable(pads):
    # Two paddings in a row (never emitted by from_onnx): refused, rather than folded into one wrong fill.
    g = _pad_then_conv(pads, "SAME")
    before = write_tflite(g)
    with pytest.raises(PixelInputNotApplicable, match="padded twice"):
        take_pixel_input(g, MEAN, STD)
    assert write_tflite(g) == before


def test_grouped_convolution_on_the_input_is_not_applicable():
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add_tensor("input", (1, 8, 8, 4))
    g.inputs.append(x)
    w = g.add_constant("w", rng.normal(0, 1, (4, 3, 3, 2)).astype(np.float32))  # 2 groups of 2 channels
    b = g.add_constant("b", np.zeros(4, np.float32))
    y = g.add_tensor("y", (1, 8, 8, 4))
    g.ops.append(Op("CONV_2D", [x, w, b], [y], {"stride": (1, 1), "padding": "SAME"}))
    g.outputs.append(y)
    before = write_tflite(g)
    with pytest.raises(PixelInputNotApplicable):
        take_pixel_input(g, (0.5,) * 4, (0.25,) * 4)
    assert write_tflite(g) == before


@pytest.mark.parametrize("first", ["pad", "same"])
def test_int8_input_is_the_pixel_byte_and_one_xnnpack_partition(first):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    original, g, _ = fold(first)
    pixels = pixel_images(32, seed=1)
    calib = pixels.astype(np.float32) / np.float32(255)
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

    # And the int8 model on raw bytes tracks the original fp32 graph on normalised images.
    test = pixel_images(4, seed=2)
    expected = run_float(write_tflite(original), normalized(test))[1]
    outputs = []
    for image in test:
        it.set_tensor(inp["index"], (image.astype(np.int16) - 128).astype(np.int8)[None])
        it.invoke()
        out = it.get_output_details()[1]
        s, z = out["quantization"]
        outputs.append((it.get_tensor(out["index"]).astype(np.float32) - z) * s)
    actual = np.concatenate(outputs)
    assert np.abs(actual - expected).max() < 0.05 * np.abs(expected).max()


# --- end to end: the exporter's defaults, its metadata, and the LiteRT runtime's pixel conversion --------


@pytest.fixture(scope="module")
def digits_exports(tmp_path_factory):
    from edgekit.export.tflite_export import export_tflite

    root = tmp_path_factory.mktemp("pixel-input")
    # int8 at the edges: the file takes pixel - 128 itself (the default uint8 edges add one exact QUANTIZE)
    folded = export_tflite("shufflenet_v2_digits", int8=True, io="int8", output_dir=root / "folded", samples=8)
    caller = export_tflite("shufflenet_v2_digits", int8=True, io="int8", output_dir=root / "caller", samples=8,
                           input_kind="normalized")
    return folded, caller


@pytest.mark.slow
def test_exported_digits_model_takes_pixels_and_the_runtime_feeds_them(digits_exports):
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.data import preprocess
    from edgekit.data.digits import digits_images
    from edgekit.export.metadata import read_metadata
    from edgekit.runtimes import open_runtime

    folded, _ = digits_exports
    assert read_metadata(folded.path)["input_normalization"] == "in-model"
    images, labels = digits_images("heldout", (64, 64))
    images, labels = images[:16], labels[:16]

    it = Interpreter(model_path=folded.path, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero_point = inp["quantization"]
    assert (scale, zero_point) == (np.float32(1 / 255), -128)
    direct = []
    for image in images:
        it.set_tensor(inp["index"], (image.astype(np.int16) - 128).astype(np.int8)[None])
        it.invoke()
        s, z = out["quantization"]
        direct.append((it.get_tensor(out["index"]).astype(np.float32) - z) * s)
    direct = np.concatenate(direct)

    mean, std = _normalisation(folded.path)
    with open_runtime(folded.path) as runtime:
        (through_runtime,) = runtime.run(preprocess(images, mean, std))
    np.testing.assert_array_equal(through_runtime, direct)
    assert (direct.argmax(axis=1) == labels).mean() >= 0.9


@pytest.mark.slow
def test_exported_digits_model_without_fold_takes_normalised_input(digits_exports):
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.export.metadata import read_metadata

    _, caller = digits_exports
    assert read_metadata(caller.path)["input_normalization"] == "caller"
    it = Interpreter(model_path=caller.path, num_threads=1)
    scale, _ = it.get_input_details()[0]["quantization"]
    assert abs(scale - 1 / 255) > 1e-4


def _normalisation(path) -> tuple[list[float], list[float]]:
    import json

    from edgekit.export.metadata import read_metadata

    fields = read_metadata(path)
    return json.loads(fields["mean"]), json.loads(fields["std"])
