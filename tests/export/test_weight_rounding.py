"""Weight-rounding bias correction: the mean output shift of a weight error, checked against PyTorch's
convolutions on inputs that are constant per channel (where "mean over positions" is exact), the symmetric
per-channel rounding both int8 backends apply, and the pass on the fp32 ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgekit.export.tflite.quantize import quantize_per_channel
from edgekit.export.weight_rounding import symmetric_per_channel_rounding, weight_rounding_shift


def _constant_input(mean: np.ndarray, size: int = 7) -> torch.Tensor:
    """NCHW input whose channel c is ``mean[c]`` everywhere."""
    return torch.from_numpy(np.broadcast_to(mean.reshape(1, -1, 1, 1), (1, len(mean), size, size)).copy())


def _mean_over_positions(y: torch.Tensor) -> np.ndarray:
    return y.mean(dim=(0, 2, 3)).numpy()


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_shift_is_mean_output_of_error_conv(groups):
    rng = np.random.default_rng(groups)
    in_c, out_c, k = 6, 8, 3
    error = rng.normal(0, 1, (out_c, in_c // groups, k, k))  # OIHW, I per group
    mean = rng.uniform(-1, 2, in_c)
    y = F.conv2d(_constant_input(mean), torch.from_numpy(error), groups=groups)
    np.testing.assert_allclose(weight_rounding_shift(error, mean), _mean_over_positions(y),
                               rtol=1e-10, atol=1e-10)


def test_grouped_conv_uses_each_groups_own_input_mean():
    # Group 0 reads channels {0, 1}, group 1 reads {2, 3}: an error only in group 1's filters sees only
    # the means of channels 2 and 3.
    error = np.zeros((4, 2, 1, 1))
    error[2:] = 1.0
    mean = np.array([100.0, 100.0, 1.0, 2.0])
    np.testing.assert_allclose(weight_rounding_shift(error, mean), [0, 0, 3, 3])


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_shift_is_mean_output_of_error_conv(multiplier):
    rng = np.random.default_rng(10 + multiplier)
    channels, k = 5, 3
    # depthwise: (C*multiplier, 1, kH, kW), output channel c*multiplier+m reads input c
    error = rng.normal(0, 1, (channels * multiplier, 1, k, k))
    mean = rng.uniform(-1, 2, channels)
    y = F.conv2d(_constant_input(mean), torch.from_numpy(error), groups=channels)
    np.testing.assert_allclose(weight_rounding_shift(error, mean), _mean_over_positions(y),
                               rtol=1e-10, atol=1e-10)


def test_fully_connected_shift_is_mean_output_of_error_layer():
    rng = np.random.default_rng(3)
    error = rng.normal(0, 1, (10, 16))  # OI
    x = rng.uniform(0, 1, (500, 16))  # linearity: the mean output is the layer applied to the mean input
    y = F.linear(torch.from_numpy(x), torch.from_numpy(error))
    np.testing.assert_allclose(weight_rounding_shift(error, x.mean(axis=0)),
                               y.mean(dim=0).numpy(), rtol=1e-10, atol=1e-10)


def _weights_with_outliers(rng) -> np.ndarray:
    w = rng.normal(0, 0.05, (6, 3, 3, 4))
    w[1] *= 40  # channels of very different magnitude: one scale per channel matters
    w[2] = 0.0  # an all-zero channel
    return w


@pytest.mark.parametrize("qmax", [127, 64])
@pytest.mark.parametrize("axis", [0, 3])
def test_symmetric_rounding_is_on_a_per_channel_grid(qmax, axis):
    w = np.moveaxis(_weights_with_outliers(np.random.default_rng(qmax + axis)), 0, axis)
    rounded = symmetric_per_channel_rounding(w, axis, qmax)
    assert rounded.shape == w.shape
    for c in range(w.shape[axis]):
        wc, rc = np.take(w, c, axis=axis), np.take(rounded, c, axis=axis)
        absmax = np.abs(wc).max()
        if absmax == 0:
            assert not rc.any()
            continue
        scale = absmax / qmax
        levels = rc / scale
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)  # integer multiples of the scale
        assert np.abs(levels).max() <= qmax + 1e-9
        assert len(np.unique(np.round(levels))) <= 2 * qmax + 1
        assert np.abs(rc - wc).max() <= scale / 2 + 1e-12
        assert np.abs(rc).max() == pytest.approx(absmax, rel=1e-12)


def test_symmetric_rounding_matches_the_tflite_int8_weights():
    # Bias correction (on the ONNX graph, for both formats) assumes this rounding; the TFLite backend rounds
    # with quantize_per_channel. Both must round the same way, or TFLite biases would absorb the wrong shift.
    w = _weights_with_outliers(np.random.default_rng(7)).astype(np.float32)
    q, quant = quantize_per_channel(w, 0)
    dequantized = q.astype(np.float64) * quant.scale.astype(np.float64).reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(symmetric_per_channel_rounding(w, 0), dequantized, rtol=1e-6, atol=1e-12)


# --- correct_weight_rounding: the pass on the fp32 ONNX graph -----------------------------------------------


def _onnx_model(kind: str, bias: bool = True, seed: int = 0):
    """x (1, 4, 6, 6) -> ``kind``: a 3x3 Conv of 6 channels, a depthwise 3x3 Conv (multiplier 2), or
    GlobalAveragePool -> Flatten -> Gemm (x @ W^T + c)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    if kind == "gemm":
        w = rng.normal(0, 0.5, (5, 4))
        nodes += [helper.make_node("GlobalAveragePool", ["x"], ["p"], name="pool"),
                  helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
                  helper.make_node("Gemm", ["f", "w"] + (["b"] if bias else []), ["y"], name="layer", transB=1)]
    else:
        group = 4 if kind == "depthwise" else 1
        w = rng.normal(0, 0.5, (8 if group > 1 else 6, 4 // group, 3, 3))
        nodes.append(helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], name="layer", group=group))
    inits.append(numpy_helper.from_array(w.astype(np.float32), "w"))
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, len(w)).astype(np.float32), "b"))
    graph = helper.make_graph(nodes, "one_layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _positive_images(count: int, seed: int = 1) -> np.ndarray:
    """Inputs with a large mean per channel, as after a ReLU or for pixels: where rounding shifts outputs.
    Constant over positions, so every window's mean is the channel's mean (no border effect)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 1, (count, 4, 1, 1)) + np.array([0.5, 1.0, 2.0, 3.0]).reshape(1, 4, 1, 1)
    return np.broadcast_to(values, (count, 4, 6, 6)).astype(np.float32)


def _rounded(model, qmax: int = 127):
    """``model`` with its layer's weights rounded as the int8 backends round them."""
    import copy

    from onnx import numpy_helper

    out = copy.deepcopy(model)
    for t in out.graph.initializer:
        if t.name == "w":
            w = numpy_helper.to_array(t).astype(np.float64)
            t.CopyFrom(numpy_helper.from_array(symmetric_per_channel_rounding(w, 0, qmax).astype(np.float32), "w"))
    return out


def _mean_output(model, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = np.concatenate([session.run(None, {"x": image[None]})[0] for image in images]).astype(np.float64)
    return y.mean(axis=tuple(i for i in range(y.ndim) if i != 1))


@pytest.mark.parametrize("kind", ["conv", "depthwise", "gemm"])
@pytest.mark.parametrize("bias", [True, False])
def test_corrected_biases_cancel_the_mean_shift_of_rounding(kind, bias):
    from edgekit.export.weight_rounding import correct_weight_rounding

    model, images = _onnx_model(kind, bias), _positive_images(8)
    corrected, result = correct_weight_rounding(model, images)
    assert result.corrected == ["layer"] and result.on_grid == []
    float_mean = _mean_output(model, images)
    shift = np.abs(_mean_output(_rounded(model), images) - float_mean).max()
    assert shift > 1e-4  # rounding moves the mean, so the test can fail
    np.testing.assert_allclose(_mean_output(_rounded(corrected), images), float_mean, atol=shift / 100, rtol=0)


def test_layers_on_their_grid_are_left_alone_without_running_the_images():
    from edgekit.export.weight_rounding import correct_weight_rounding

    model = _rounded(_onnx_model("conv"))
    corrected, result = correct_weight_rounding(model, None)  # no images: none are needed
    assert result.on_grid == ["layer"] and result.corrected == []
    assert corrected.SerializeToString() == model.SerializeToString()
    # 7-bit weights have another grid: the 8-bit rounding is off it
    _, seven = correct_weight_rounding(model, _positive_images(4), qmax=64)
    assert seven.corrected == ["layer"]


@pytest.mark.parametrize("kind", ["conv", "depthwise", "gemm"])
def test_input_means_are_per_image_means_over_every_batch_the_observer_runs(kind):
    # 20 images of different scales, varying over positions: two observer runs (16 + 4), and each image
    # must weigh the same, whatever run it came in.
    from onnx import numpy_helper

    from edgekit.export.weight_rounding import correct_weight_rounding
    from edgekit.runtimes.observer import ActivationObserver

    model = _onnx_model(kind)
    rng = np.random.default_rng(5)
    images = (rng.uniform(0, 1, (20, 4, 6, 6)) * rng.uniform(0.5, 4, (20, 1, 1, 1))).astype(np.float32)
    with ActivationObserver(model, ["x"]) as observer:
        assert observer.batch < len(images)
    corrected, _ = correct_weight_rounding(model, images)
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    error = symmetric_per_channel_rounding(init["w"], 0) - init["w"]
    mean = images.astype(np.float64).mean(axis=(0, 2, 3))  # every image has as many positions
    shift = weight_rounding_shift(error, mean)
    got = {t.name: numpy_helper.to_array(t) for t in corrected.graph.initializer}["b"]
    np.testing.assert_allclose(got, init["b"] - shift, rtol=0, atol=1e-6)
    assert np.abs(shift).max() > 1e-3  # the means matter, so the test can fail
