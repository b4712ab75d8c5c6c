"""Bias correction of weight rounding, written once (``weight_rounding.correct_weight_rounding`` on the fp32
ONNX graph, run by ``ptq_steps.prepare_model`` for both formats), seen from the int8 files: only biases change,
and through weights whose rounding errors all point one way, on inputs with a large mean (pixels, post-ReLU
values), the mean output error per channel of the file ONNX Runtime or LiteRT runs shrinks. The shift
arithmetic per layer kind is tested in test_weight_rounding.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from test_tflite_quantize import run

from edgekit.data.bundled import bundled_images
from edgekit.export.onnx_int8 import quantize_onnx_model
from edgekit.export.weight_rounding import correct_weight_rounding, symmetric_per_channel_rounding
from edgekit.runtimes.litert_runtime import load_interpreter_module

CHANNELS = 8
SIZE = 8
K = 3


def biased_rounding_weights(seed: int = 0, in_channels: int = CHANNELS, k: int = K) -> np.ndarray:
    """OIHW weights, per output channel two of magnitude 1 (they set the int8 scale 1/127) and the rest
    between 0.15 and 0.45 of that scale, all of one sign per channel (alternating across channels): every
    small one rounds to 0, so the rounding error of a channel is one-signed."""
    rng = np.random.default_rng(seed)
    w = np.empty((CHANNELS, in_channels, k, k))
    for o in range(CHANNELS):
        sign = 1.0 if o % 2 == 0 else -1.0
        flat = sign * rng.uniform(0.15, 0.45, in_channels * k * k) / 127
        flat[rng.choice(len(flat), 2, replace=False)] = [1.0, -1.0]
        w[o] = flat.reshape(in_channels, k, k)
    return w


def positive_inputs(count: int, seed: int) -> np.ndarray:
    """NCHW float32 in [0.5, 1]: a large mean per channel, as after ReLU."""
    return np.random.default_rng(seed).uniform(0.5, 1.0, (count, CHANNELS, SIZE, SIZE)).astype(np.float32)


def channel_bias(actual: np.ndarray, expected: np.ndarray, channel_axis: int) -> np.ndarray:
    """Mean of (int8 - fp32) per channel over images and positions."""
    axes = tuple(i for i in range(actual.ndim) if i != channel_axis)
    return (actual.astype(np.float64) - expected).mean(axis=axes)


def assert_one_signed_error_removed(before: np.ndarray, after: np.ndarray, least: float) -> None:
    """``before``: each channel off by at least ``least``, opposite to its weights' sign (small weights of
    sign s rounded to 0 take s * E[x] away); ``after``: under 5% of the smallest of those."""
    assert np.abs(before).min() > least, before
    assert np.all(before[::2] < 0) and np.all(before[1::2] > 0), before
    assert np.abs(after).max() < 0.05 * np.abs(before).min(), (before, after)


# --- ONNX: the pass on the graph, and the QDQ file ONNX Runtime runs -------------------------------------


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def onnx_model(seed: int = 0) -> onnx.ModelProto:
    """x -> conv1 (biased rounding, bias; output y1) -> conv2 (1x1, no bias) -> relu -> conv3 (1x1, bias)."""
    rng = np.random.default_rng(seed)
    inits = [_init("w1", biased_rounding_weights(seed)), _init("b1", rng.normal(0, 0.1, CHANNELS)),
             _init("w2", rng.normal(0, 0.3, (CHANNELS, CHANNELS, 1, 1))),
             _init("w3", rng.normal(0, 0.3, (4, CHANNELS, 1, 1))), _init("b3", rng.normal(0, 0.1, 4))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], name="conv1"),
        helper.make_node("Conv", ["y1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["y3"], name="conv3"),
    ]
    side = SIZE - K + 1
    graph = helper.make_graph(
        nodes, "bias_correction",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, SIZE, SIZE])],
        [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [1, CHANNELS, side, side]),
         helper.make_tensor_value_info("y3", TensorProto.FLOAT, [1, 4, side, side])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Output y1 over ``x``, with ONNX Runtime's default (integer-kernel) optimizations."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(["y1"], {"x": image[None]})[0] for image in x])


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_correction_changes_only_biases_and_gives_a_bias_to_a_layer_without_one():
    model = onnx_model()
    before = model.SerializeToString()
    corrected, result = correct_weight_rounding(model, positive_inputs(16, seed=1))
    assert result.corrected == ["conv1", "conv2", "conv3"] and result.on_grid == []
    assert model.SerializeToString() == before  # the input model is not modified
    assert [(n.op_type, n.name, list(n.output)) for n in corrected.graph.node] == [
        (n.op_type, n.name, list(n.output)) for n in model.graph.node]
    assert [list(n.input) for n in corrected.graph.node] == [
        ["x", "w1", "b1"], ["y1", "w2", "c2_rounding_bias"], ["c2"], ["r2", "w3", "b3"]]
    old, new = _initializers(model), _initializers(corrected)
    assert set(new) == set(old) | {"c2_rounding_bias"}
    for name in ("w1", "w2", "w3"):
        assert old[name].tobytes() == new[name].tobytes()
    assert new["c2_rounding_bias"].dtype == np.float32 and new["c2_rounding_bias"].shape == (CHANNELS,)
    # conv1's small weights round to 0, one sign per channel: its bias moves the other way.
    shift = new["b1"] - old["b1"]
    assert np.all(shift[::2] > 0.05) and np.all(shift[1::2] < -0.05), shift
    assert not np.array_equal(old["b3"], new["b3"])


@pytest.mark.parametrize("reduce_range", [False, True])
def test_onnx_int8_file_loses_the_mean_output_error(reduce_range):
    model = onnx_model()
    calib = positive_inputs(32, seed=1)
    corrected, _ = correct_weight_rounding(model, calib, qmax=64 if reduce_range else 127)
    x = positive_inputs(64, seed=2)
    reference = run_onnx(model, x)
    before = channel_bias(run_onnx(quantize_onnx_model(model, calib, reduce_range=reduce_range), x), reference, 1)
    after = channel_bias(run_onnx(quantize_onnx_model(corrected, calib, reduce_range=reduce_range), x), reference, 1)
    assert_one_signed_error_removed(before, after, 0.08)


def test_seven_bit_correction_follows_the_seven_bit_grid():
    model = onnx_model()
    images = positive_inputs(16, seed=1)
    eight, _ = correct_weight_rounding(model, images)
    seven, _ = correct_weight_rounding(model, images, qmax=64)
    # conv1's small weights round to 0 on both grids; conv3's random weights round apart.
    np.testing.assert_array_equal(_initializers(eight)["b1"], _initializers(seven)["b1"])
    assert not np.array_equal(_initializers(eight)["b3"], _initializers(seven)["b3"])


@pytest.mark.parametrize("reduce_range", [False, True])
def test_correction_rounds_weights_as_onnx_runtime_does(reduce_range):
    # The correction is only right if its rounding is the one ONNX Runtime's quantizer applies.
    model = onnx_model()
    quantized = quantize_onnx_model(model, positive_inputs(8, seed=1), reduce_range=reduce_range)
    inits = _initializers(quantized)
    producers = {o: n for n in quantized.graph.node for o in n.output}
    for conv, weight in (("conv1", "w1"), ("conv3", "w3")):
        (node,) = [n for n in quantized.graph.node if n.name == conv]
        dq = producers[node.input[1]]
        assert dq.op_type == "DequantizeLinear"
        q, scale = inits[dq.input[0]].astype(np.float64), inits[dq.input[1]].astype(np.float64)
        dequantized = q * scale.reshape(-1, 1, 1, 1)
        expected = symmetric_per_channel_rounding(_initializers(model)[weight], 0, 64 if reduce_range else 127)
        np.testing.assert_allclose(dequantized, expected, rtol=1e-6, atol=1e-9)


# --- TFLite: the export, end to end --------------------------------------------------------------------

TFLITE_SIZE, TFLITE_K = 32, 5
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
FACTORY = """
    import numpy as np
    import torch
    import torch.nn as nn

    def net():
        conv = nn.Conv2d(3, {channels}, {k})  # no padding: no pixel-fill border
        conv.weight.data = torch.tensor(np.load({weights!r}), dtype=torch.float32)
        conv.bias.data.zero_()
        return conv
"""


@pytest.fixture(scope="module")
def tflite_pair(tmp_path_factory):
    """The int8 file of one pixel-reading conv with biased rounding, exported without and with bias correction
    (nothing else rounds or rescales it), and its fp32 outputs on the calibration crops."""
    from edgekit.export.tflite_export import export_tflite

    root = tmp_path_factory.mktemp("bias_tflite")
    weights = biased_rounding_weights(in_channels=3, k=TFLITE_K)
    np.save(root / "weights.npy", weights)
    factory = root / "net.py"
    factory.write_text(textwrap.dedent(FACTORY.format(channels=CHANNELS, k=TFLITE_K,
                                                      weights=str(root / "weights.npy"))))
    results = {
        corrected: export_tflite(f"{factory}:net", int8=True, input_kind="pixels", io="float",
                                 input_shape=(1, 3, TFLITE_SIZE, TFLITE_SIZE), calib=16, equalize=False,
                                 optimal_rounding=False, bias_correction=corrected, float_first_layers=False,
                                 check=False, output_dir=root / str(corrected))
        for corrected in (False, True)}
    # the calibration crops, as pixels (calibration_set's seed-1 crops)
    pixels = bundled_images(16, size=(TFLITE_SIZE, TFLITE_SIZE), seed=1).astype(np.float32) / 255
    normalized = ((pixels - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).astype(np.float32)
    reference = torch.nn.functional.conv2d(torch.from_numpy(normalized), torch.from_numpy(weights).float())
    return results, pixels, reference.numpy().transpose(0, 2, 3, 1)


def _conv_constants(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The int8 filter and int32 bias of the file's one CONV_2D, as LiteRT reads them."""
    interpreter = load_interpreter_module()[0](model_path=path)
    interpreter.allocate_tensors()
    found = {}
    for t in interpreter.get_tensor_details():
        if (t["dtype"], len(t["shape"])) in ((np.int8, 4), (np.int32, 1)) and t["shape"][0] == CHANNELS:
            found[t["dtype"]] = interpreter.get_tensor(t["index"])
    return found[np.int8], found[np.int32]


def test_tflite_int8_file_differs_only_in_its_bias(tflite_pair):
    results, _, _ = tflite_pair
    plain, corrected = (_conv_constants(results[c].path) for c in (False, True))
    assert results[False].op_histogram == results[True].op_histogram == {"CONV_2D": 1, "QUANTIZE": 1,
                                                                         "DEQUANTIZE": 1}
    np.testing.assert_array_equal(plain[0], corrected[0])  # the same int8 weights
    assert not np.array_equal(plain[1], corrected[1])
    assert any("bias correction: nearest-rounding shift taken out of 1 layers' biases" in n
               for n in results[True].notes)
    assert not any("bias correction" in n for n in results[False].notes)


def test_tflite_int8_file_loses_the_mean_output_error(tflite_pair):
    results, pixels, reference = tflite_pair
    before, after = (channel_bias(run(Path(results[c].path).read_bytes(), pixels), reference, channel_axis=3)
                     for c in (False, True))
    assert_one_signed_error_removed(before, after, 0.2)
