"""Bias correction of weight rounding in both int8 quantizers: only biases change, and on inputs with a
large mean (post-ReLU-like) through weights whose rounding errors all point one way, the int8 model's
mean output error per channel shrinks. Measured with real LiteRT and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_tflite_quantize import run

from edgekit.export.onnx_int8 import correct_weight_rounding, quantize_onnx_model
from edgekit.export.tflite.calibrate import calibrate_ranges
from edgekit.export.tflite.ir import Graph, Op
from edgekit.export.tflite.quantize import quantize_graph
from edgekit.export.tflite.writer import write_tflite
from edgekit.export.weight_rounding import symmetric_per_channel_rounding

CHANNELS = 8
SIZE = 8
K = 3


def biased_rounding_weights(seed: int = 0) -> np.ndarray:
    """OIHW 3x3 weights, per output channel two of magnitude 1 (they set the int8 scale 1/127) and 70
    between 0.15 and 0.45 of that scale, all of one sign per channel: every small one rounds to 0, so the
    rounding error of a channel is one-signed and adds up to about 0.16 on inputs near 0.75."""
    rng = np.random.default_rng(seed)
    w = np.empty((CHANNELS, CHANNELS, K, K))
    for o in range(CHANNELS):
        sign = 1.0 if o % 2 == 0 else -1.0
        flat = sign * rng.uniform(0.15, 0.45, CHANNELS * K * K) / 127
        big = rng.choice(len(flat), 2, replace=False)
        flat[big] = [1.0, -1.0]
        w[o] = flat.reshape(CHANNELS, K, K)
    return w


def positive_inputs(count: int, seed: int) -> np.ndarray:
    """NCHW float32 in [0.5, 1]: a large mean per channel, as after ReLU."""
    return np.random.default_rng(seed).uniform(0.5, 1.0, (count, CHANNELS, SIZE, SIZE)).astype(np.float32)


def channel_bias(actual: np.ndarray, expected: np.ndarray, channel_axis: int) -> np.ndarray:
    """Mean of (int8 - fp32) per channel over images and positions."""
    axes = tuple(i for i in range(actual.ndim) if i != channel_axis)
    return (actual.astype(np.float64) - expected).mean(axis=axes)


# --- TFLite --------------------------------------------------------------------------------------------


def tflite_graph(seed: int = 0) -> Graph:
    """conv (biased rounding, output 1) -> relu -> depthwise -> mean -> fully connected (output 2)."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_tensor("input", (1, SIZE, SIZE, CHANNELS))
    g.inputs.append(x)
    w = g.add_constant("conv_filter", biased_rounding_weights(seed).transpose(0, 2, 3, 1).astype(np.float32))
    b = g.add_constant("conv_bias", rng.normal(0, 0.1, CHANNELS).astype(np.float32))
    side = SIZE - K + 1
    c = g.add_tensor("conv", (1, side, side, CHANNELS))
    g.ops.append(Op("CONV_2D", [x, w, b], [c], {"stride": (1, 1), "padding": "VALID"}, "conv"))
    r = g.add_tensor("relu", (1, side, side, CHANNELS))
    g.ops.append(Op("RELU", [c], [r]))
    dw = g.add_constant("dw_filter", rng.normal(0, 0.4, (1, 3, 3, 2 * CHANNELS)).astype(np.float32))
    db = g.add_constant("dw_bias", rng.normal(0, 0.1, 2 * CHANNELS).astype(np.float32))
    d = g.add_tensor("dw", (1, side, side, 2 * CHANNELS))
    g.ops.append(Op("DEPTHWISE_CONV_2D", [r, dw, db], [d],
                    {"stride": (1, 1), "padding": "SAME", "depth_multiplier": 2}, "dw"))
    m = g.add_tensor("mean", (1, 1, 1, 2 * CHANNELS))
    g.ops.append(Op("MEAN", [d, g.int32_constant("mean_axes", [1, 2])], [m], {"keep_dims": True}))
    f = g.add_tensor("flat", (1, 2 * CHANNELS))
    g.ops.append(Op("RESHAPE", [m, g.int32_constant("flat_shape", [1, 2 * CHANNELS])], [f],
                    {"new_shape": (1, 2 * CHANNELS)}))
    fw = g.add_constant("fc_weights", rng.normal(0, 0.25, (10, 2 * CHANNELS)).astype(np.float32))
    fb = g.add_constant("fc_bias", rng.normal(0, 0.1, 10).astype(np.float32))
    y = g.add_tensor("logits", (1, 10))
    g.ops.append(Op("FULLY_CONNECTED", [f, fw, fb], [y], {}, "fc"))
    g.outputs += [c, y]
    return g


@pytest.fixture(scope="module")
def tflite_quantized():
    g = tflite_graph()
    calib = positive_inputs(32, seed=1).transpose(0, 2, 3, 1)
    means: dict[str, np.ndarray] = {}
    ranges = calibrate_ranges(g, calib, channel_means=means)
    return g, quantize_graph(g, ranges), quantize_graph(g, ranges, input_means=means), means


def test_tflite_channel_means_are_the_calibration_means(tflite_quantized):
    g, _, _, means = tflite_quantized
    calib = positive_inputs(32, seed=1)
    np.testing.assert_allclose(means["input"], calib.mean(axis=(0, 2, 3)), rtol=1e-5)
    assert set(means) == {"input", "relu", "flat"}  # what the conv, depthwise and fully connected ops read


def test_tflite_correction_changes_only_biases(tflite_quantized):
    g, plain, corrected, _ = tflite_quantized
    biases = {op.inputs[2] for q in (plain, corrected) for op in q.ops
              if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}
    assert set(plain.tensors) == set(corrected.tensors)
    assert [(op.kind, op.inputs, op.outputs) for op in plain.ops] == [
        (op.kind, op.inputs, op.outputs) for op in corrected.ops]
    for name, t in plain.tensors.items():
        u = corrected.tensors[name]
        assert (t.dtype, t.shape) == (u.dtype, u.shape)
        if t.quant is not None:
            np.testing.assert_array_equal(t.quant.scale, u.quant.scale)
            np.testing.assert_array_equal(t.quant.zero_point, u.quant.zero_point)
        if t.is_constant and name not in biases:
            assert t.data.tobytes() == u.data.tobytes(), name
    weights = [plain.tensors[op.inputs[1]] for op in plain.ops if op.inputs[2:3] and op.inputs[2] in biases]
    assert all(w.dtype == "int8" for w in weights) and len(weights) == 3
    changed = [name for name in biases if not np.array_equal(plain.tensors[name].data, corrected.tensors[name].data)]
    assert len(changed) == 3  # every layer reads inputs with a nonzero mean


def test_tflite_correction_removes_the_mean_output_error(tflite_quantized):
    g, plain, corrected, _ = tflite_quantized
    x = positive_inputs(64, seed=2).transpose(0, 2, 3, 1)
    reference = run(write_tflite(g), x, xnnpack=False)
    before = channel_bias(run(write_tflite(plain), x, xnnpack=False), reference, channel_axis=3)
    after = channel_bias(run(write_tflite(corrected), x, xnnpack=False), reference, channel_axis=3)
    # The weights' rounding error is one-signed per channel (alternating signs across channels).
    assert np.abs(before).min() > 0.08, before
    assert np.all(np.sign(before[::2]) == -1) and np.all(np.sign(before[1::2]) == 1), before
    assert np.abs(after).max() < 0.05 * np.abs(before).min(), (before, after)


# --- ONNX ----------------------------------------------------------------------------------------------


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


def test_onnx_correction_changes_only_conv_biases():
    model = onnx_model()
    before = model.SerializeToString()
    corrected, count = correct_weight_rounding(model, positive_inputs(16, seed=1))
    assert count == 2  # conv2 has no bias to correct
    assert model.SerializeToString() == before
    assert [(n.op_type, list(n.input), list(n.output)) for n in corrected.graph.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in model.graph.node]
    old, new = _initializers(model), _initializers(corrected)
    assert set(old) == set(new)
    for name in ("w1", "w2", "w3"):
        assert old[name].tobytes() == new[name].tobytes()
    for name in ("b1", "b3"):
        assert new[name].dtype == np.float32 and not np.array_equal(old[name], new[name])
    # conv1's weights round one way per channel: its bias moves the other way, by about 0.16.
    shift = new["b1"] - old["b1"]
    assert np.all(shift[::2] > 0.05) and np.all(shift[1::2] < -0.05), shift


def test_onnx_reduce_range_corrects_for_7_bit_rounding():
    model = onnx_model()
    images = positive_inputs(16, seed=1)
    eight, _ = correct_weight_rounding(model, images)
    seven, _ = correct_weight_rounding(model, images, reduce_range=True)
    # conv1's small weights round to 0 on both grids; conv3's random weights do not.
    np.testing.assert_array_equal(_initializers(eight)["b1"], _initializers(seven)["b1"])
    assert not np.array_equal(_initializers(eight)["b3"], _initializers(seven)["b3"])


def test_onnx_correction_removes_the_mean_output_error():
    model = onnx_model()
    calib = positive_inputs(32, seed=1)
    corrected, _ = correct_weight_rounding(model, calib)
    x = positive_inputs(64, seed=2)
    reference = run_onnx(model, x)
    before = channel_bias(run_onnx(quantize_onnx_model(model, calib), x), reference, channel_axis=1)
    after = channel_bias(run_onnx(quantize_onnx_model(corrected, calib), x), reference, channel_axis=1)
    assert np.abs(before).min() > 0.08, before
    assert np.abs(after).max() < 0.05 * np.abs(before).min(), (before, after)


@pytest.mark.parametrize("reduce_range", [False, True])
def test_onnx_correction_rounds_weights_as_onnx_runtime_does(reduce_range):
    # The correction is only right if its rounding is the one quantize_static applies.
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
