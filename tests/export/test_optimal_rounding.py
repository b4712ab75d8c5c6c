"""GPTQ weight rounding: it lowers what the layers compute wrong, stays on the exporters' grids, and the
quantizers keep its integers."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from edgekit.errors import ExportError
from edgekit.export import optimal_rounding
from edgekit.export.optimal_rounding import round_weights_optimally
from edgekit.export.tflite.quantize import quantize_per_channel
from edgekit.export.weight_rounding import symmetric_per_channel_rounding


def _block(seed: int = 0) -> onnx.ModelProto:
    """Conv3x3 -> Relu -> depthwise Conv3x3 -> Conv1x1 -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)

    def init(name, shape, scale=1.0):
        return numpy_helper.from_array((rng.normal(0, scale, shape)).astype(np.float32), name)

    inits = [init("w1", (16, 3, 3, 3), 0.3), init("b1", (16,), 0.1), init("w2", (16, 1, 3, 3), 0.5),
             init("b2", (16,), 0.1), init("w3", (24, 16, 1, 1), 0.3), init("b3", (24,), 0.1),
             init("w4", (10, 24), 0.3), init("b4", (10,), 0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], "conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], "dw", pads=[1, 1, 1, 1], group=16),
        helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], "pw"),
        helper.make_node("Relu", ["c3"], ["r3"], "relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["p"], "pool"),
        helper.make_node("Flatten", ["p"], ["f"], "flat"),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["y"], "fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                             [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray, names=("y",)) -> list[np.ndarray]:
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        if name not in {o.name for o in probe.graph.output}:
            probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = [session.run(list(names), {"x": x[i : i + 1]}) for i in range(len(x))]
    return [np.concatenate([o[k] for o in outs]) for k in range(len(names))]


def _nearest(model: onnx.ModelProto, qmax: int = 127) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        if t.name.startswith("w"):
            w = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(symmetric_per_channel_rounding(w, 0, qmax).astype(np.float32), t.name))
    return out


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).normal(0, 1, (48, 3, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("qmax", [127, 64])
def test_weights_land_on_the_grid_the_quantizers_derive(images, qmax):
    model = _block()
    rounded, result = round_weights_optimally(model, images, qmax=qmax)
    assert result.layers == 3 and result.nearest == ["fc"] and result.skipped == []
    before = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for t in rounded.graph.initializer:
        if not t.name.startswith("w"):
            continue
        w = numpy_helper.to_array(t).astype(np.float64)
        flat = w.reshape(w.shape[0], -1)
        # Same per-channel scale as the float weights: the weight that set it kept its level.
        original = before[t.name].reshape(w.shape[0], -1)
        np.testing.assert_allclose(np.abs(flat).max(axis=1), np.abs(original).max(axis=1), rtol=1e-6)
        # Re-deriving the scale and rounding to nearest (what the exporters do) changes nothing.
        np.testing.assert_allclose(symmetric_per_channel_rounding(w, 0, qmax), w, rtol=0, atol=1e-6 * np.abs(w).max())
        if qmax == 127:
            q, quant = quantize_per_channel(w, 0)
            scale = quant.scale.astype(np.float64).reshape([-1] + [1] * (w.ndim - 1))
            np.testing.assert_allclose(q * scale, w, rtol=0, atol=1e-6 * np.abs(w).max())


def test_layer_outputs_are_closer_to_float_than_with_nearest_rounding(images):
    model = _block()
    rounded, result = round_weights_optimally(model, images)
    assert result.mean_error_ratio < 0.9
    # Not c1: its input is white noise, so H is about the identity and nearest rounding is already optimal
    # (measured: a tie). Every layer behind it reads correlated inputs, where GPTQ gains.
    names = ("c2", "c3", "y")
    x = np.random.default_rng(2).normal(0, 1, (32, 3, 16, 16)).astype(np.float32)  # not the calibration set
    ref = _run(model, x, names)
    near = _run(_nearest(model), x, names)
    gptq = _run(rounded, x, names)
    for r, n, g in zip(ref, near, gptq, strict=True):
        assert np.mean((g - r) ** 2) < np.mean((n - r) ** 2)


def test_bias_takes_the_mean_shift(images):
    model = _block()
    rounded, _ = round_weights_optimally(model, images)
    ref, got = _run(model, images, ("c1",))[0], _run(rounded, images, ("c1",))[0]
    # On the calibration images the per-channel mean error of the first layer is gone.
    err = (got - ref).mean(axis=(0, 2, 3))
    assert np.abs(err).max() < 1e-4 * np.abs(ref).max()


def test_input_model_is_untouched_and_shared_weights_are_skipped(images):
    model = _block()
    snapshot = model.SerializeToString()
    # Make the depthwise conv share its bias with nothing but read its weights twice: skipped, not broken.
    model.graph.node.append(helper.make_node("Identity", ["w2"], ["w2_copy"], "peek"))
    model.graph.output.append(helper.make_tensor_value_info("w2_copy", onnx.TensorProto.FLOAT, None))
    rounded, result = round_weights_optimally(model, images)
    assert result.skipped == ["dw"] and result.layers == 2
    w2 = {t.name: numpy_helper.to_array(t) for t in rounded.graph.initializer}["w2"]
    np.testing.assert_array_equal(w2, {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}["w2"])
    fresh = _block()
    round_weights_optimally(fresh, images)
    assert fresh.SerializeToString() == snapshot


def test_layers_with_too_few_patches_per_input_are_rounded_to_nearest(images, monkeypatch):
    # The classifier reads one 24-feature row per image: 32 images give 32 rows, under 4 per input.
    model = _block()
    rounded, result = round_weights_optimally(model, images)
    assert result.nearest == ["fc"]
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}["w4"]
    got = {t.name: numpy_helper.to_array(t) for t in rounded.graph.initializer}
    np.testing.assert_array_equal(got["w4"], symmetric_per_channel_rounding(w, 0, 127).astype(np.float32))
    assert not np.array_equal(got["b4"], {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}["b4"])
    monkeypatch.setattr(optimal_rounding, "MIN_PATCHES_PER_INPUT", 1)
    _, result = round_weights_optimally(model, images)
    assert result.layers == 4 and result.nearest == []


def test_images_that_do_not_fit_raise(images):
    with pytest.raises(ExportError, match="shaped like the model input"):
        round_weights_optimally(_block(), images[:, :, :8, :8])
    with pytest.raises(ExportError, match="at least one calibration image"):
        round_weights_optimally(_block(), images[:0])


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_ranges_gathered_in_the_gptq_pass_are_those_of_the_graph_before_rounding(method, monkeypatch):
    # 80 images: H reads the first MAX_IMAGES (monkeypatched to 32), the ranges all of them, in one pass
    from edgekit.export.activation_ranges import RangePass
    from edgekit.export.onnx_int8 import observed_ranges

    monkeypatch.setattr(optimal_rounding, "MAX_IMAGES", 32)
    x = np.random.default_rng(2).normal(0, 1, (80, 3, 16, 16)).astype(np.float32)
    model = _block()
    names = ["c1", "r1", "c2", "c3", "r3", "y"]
    gathered = RangePass(names, len(x), method=method)
    rounded, _ = round_weights_optimally(model, x, ranges=gathered)
    assert gathered.seen == len(x)
    expected = observed_ranges(model, x, names, method=method)
    after = observed_ranges(rounded, x, names, method=method)
    got = gathered.ranges()
    for name in names:
        width = expected[name][1] - expected[name][0]
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5 * width, err_msg=name)
    # the rounded graph's ranges differ (what one shared pass gives up), by little
    assert any(after[n] != expected[n] for n in names)
    # and H comes from the first 32 images only: the same rounding as without ranges
    alone, _ = round_weights_optimally(model, x[:32])
    for a, b in zip(rounded.graph.initializer, alone.graph.initializer, strict=True):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b), err_msg=a.name)
