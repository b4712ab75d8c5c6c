"""LiteRTRuntime on hand-built .tflite files: NHWC handling, int8 (de)quantisation, XNNPACK, threads."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tflite_builder as tb
import torch
from runtime_models import random_input

from edgekit.errors import DataError, EdgekitError
from edgekit.runtimes.base import TensorSpec
from edgekit.runtimes.litert_runtime import LiteRTRuntime, _quantize

H = W = 8


@pytest.fixture(scope="module")
def conv_weights():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5
    bias = rng.standard_normal(4).astype(np.float32)
    return weight, bias


def conv_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """What a VALID, stride-1 conv computes, NCHW in and out."""
    with torch.no_grad():
        return torch.nn.functional.conv2d(
            torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias)
        ).numpy()


def write(path, content: bytes):
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def float_conv(tmp_path_factory, conv_weights):
    return write(
        tmp_path_factory.mktemp("tflite") / "conv.tflite",
        tb.conv2d_float(*conv_weights, height=H, width=W),
    )


@pytest.fixture(scope="module")
def int8_conv(tmp_path_factory, conv_weights):
    x = random_input((16, 3, H, W), seed=5)
    y = conv_reference(x, *conv_weights)
    model = tb.conv2d_int8(
        *conv_weights,
        height=H,
        width=W,
        input_range=(float(x.min()), float(x.max())),
        output_range=(float(y.min()), float(y.max())),
    )
    return write(tmp_path_factory.mktemp("tflite") / "conv_int8.tflite", model.content), model


@pytest.mark.parametrize("xnnpack", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_float_conv_takes_nchw(float_conv, conv_weights, threads, xnnpack):
    x = random_input((1, 3, H, W))
    with LiteRTRuntime(float_conv, threads=threads, xnnpack=xnnpack) as rt:
        (y,) = rt.run(x)
    assert y.dtype == np.float32 and y.shape == (1, 4, H - 2, W - 2)
    np.testing.assert_allclose(y, conv_reference(x, *conv_weights), atol=1e-5, rtol=0)


def test_describes_model(float_conv):
    with LiteRTRuntime(float_conv, threads=2, xnnpack=False) as rt:
        assert rt.name == "litert"
        assert rt.package == "ai-edge-litert"
        assert rt.version == __import__("ai_edge_litert").__version__
        assert rt.settings == {"threads": 2, "xnnpack": False}
        assert rt.precision == "fp32"
        assert rt.inputs == [TensorSpec("input", (1, H, W, 3), "float32", "NHWC")]
        assert rt.outputs == [TensorSpec("output", (1, H - 2, W - 2, 4), "float32", "NHWC")]


def test_xnnpack_on_and_off_agree(float_conv):
    x = random_input((1, 3, H, W), seed=9)
    with LiteRTRuntime(float_conv, xnnpack=True) as on, LiteRTRuntime(float_conv, xnnpack=False) as off:
        np.testing.assert_allclose(on.run(x)[0], off.run(x)[0], atol=1e-5, rtol=0)


def test_batch_larger_than_model_runs_in_chunks(float_conv, conv_weights):
    x = random_input((5, 3, H, W), seed=2)
    with LiteRTRuntime(float_conv) as rt:
        (y,) = rt.run(x)
    assert y.shape == (5, 4, H - 2, W - 2)
    np.testing.assert_allclose(y, conv_reference(x, *conv_weights), atol=1e-5, rtol=0)


def test_dynamic_batch_is_resized(tmp_path, conv_weights):
    path = write(
        tmp_path / "dyn.tflite", tb.conv2d_float(*conv_weights, height=H, width=W, dynamic_batch=True)
    )
    with LiteRTRuntime(path) as rt:
        assert rt.inputs[0].shape == (None, H, W, 3)
        for batch in (3, 1, 3):
            x = random_input((batch, 3, H, W), seed=batch)
            np.testing.assert_allclose(rt.run(x)[0], conv_reference(x, *conv_weights), atol=1e-5, rtol=0)


@pytest.mark.parametrize("xnnpack", [True, False])
def test_int8_conv_quantises_input_and_dequantises_output(int8_conv, conv_weights, xnnpack):
    path, model = int8_conv
    x = random_input((4, 3, H, W), seed=5)
    with LiteRTRuntime(path, xnnpack=xnnpack) as rt:
        (spec_in,), (spec_out,) = rt.inputs, rt.outputs
        assert spec_in.dtype == "int8" and spec_in.quantized
        assert spec_in.scale == pytest.approx(model.input_quant.scale[0])
        assert spec_in.zero_point == model.input_quant.zero_point[0]
        assert (spec_out.dtype, spec_out.zero_point) == ("int8", model.output_quant.zero_point[0])
        assert rt.precision == "int8"
        (y,) = rt.run(x)
    assert y.dtype == np.float32
    step = model.output_quant.scale[0]
    # Bit-exact against the integer arithmetic up to one output step of requantisation rounding...
    np.testing.assert_allclose(y, model.reference(x), atol=step * 1.001, rtol=0)
    # ...and within a few steps of the float convolution it approximates.
    np.testing.assert_allclose(y, conv_reference(x, *conv_weights), atol=step * 4, rtol=0)


def test_int8_identity_round_trip(tmp_path):
    # A 1x1 identity conv with equal input and output quantisation returns its input quantised:
    # representable values come back exactly, others to the nearest step, out-of-range ones saturated.
    weight = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    model = tb.conv2d_int8(
        weight, np.zeros(3, np.float32), height=2, width=2, input_range=(-1.0, 1.0), output_range=(-1.0, 1.0)
    )
    path = write(tmp_path / "identity_int8.tflite", model.content)
    scale, zp = model.input_quant.scale[0], model.input_quant.zero_point[0]
    grid = ((np.arange(-128, 116) - zp) * np.float32(scale)).astype(np.float32)
    with LiteRTRuntime(path) as rt:
        x = grid[:12].reshape(1, 3, 2, 2)
        np.testing.assert_allclose(rt.run(x)[0], x, atol=1e-6, rtol=0)
        x_off = x + np.float32(scale * 0.3)
        np.testing.assert_allclose(rt.run(x_off)[0], x, atol=1e-6, rtol=0)
        big = np.full((1, 3, 2, 2), 50.0, np.float32)
        np.testing.assert_allclose(rt.run(big)[0], (127 - zp) * scale, atol=1e-6, rtol=0)
        np.testing.assert_allclose(rt.run(-big)[0], (-128 - zp) * scale, atol=1e-6, rtol=0)


def test_quantize_rounds_half_away_from_zero():
    spec = TensorSpec("x", (4,), "int8", None, scale=0.5, zero_point=0)
    q = _quantize(np.array([0.25, -0.25, 0.75, 200.0], np.float32), spec)
    assert q.dtype == np.int8
    assert q.tolist() == [1, -1, 2, 127]  # np.rint would give 0, -0, 2
    uspec = TensorSpec("x", (3,), "uint8", None, scale=0.1, zero_point=10)
    assert _quantize(np.array([-5.0, 0.0, 0.5], np.float32), uspec).tolist() == [0, 10, 15]


def test_fully_connected_2d_input(tmp_path):
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((5, 7)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    path = write(tmp_path / "fc.tflite", tb.fully_connected_float(weight, bias))
    x = rng.standard_normal((3, 7)).astype(np.float32)
    with LiteRTRuntime(path) as rt:
        assert rt.inputs[0].layout is None and rt.outputs[0].layout is None
        (y,) = rt.run(x)
    np.testing.assert_allclose(y, x @ weight.T + bias, atol=1e-5, rtol=0)


def test_wrong_input_raises_data_error(float_conv):
    with LiteRTRuntime(float_conv) as rt:
        with pytest.raises(DataError, match=r"1x4x8x8 does not fit the model's input 'input' \(1x3x8x8"):
            rt.run(random_input((1, 4, H, W)))
        with pytest.raises(DataError, match="int32"):
            rt.run(np.zeros((1, 3, H, W), np.int32))


def test_missing_interpreter_package_is_a_clear_error(float_conv, monkeypatch):
    for module in (
        "ai_edge_litert",
        "ai_edge_litert.interpreter",
        "tflite_runtime",
        "tflite_runtime.interpreter",
    ):
        monkeypatch.setitem(sys.modules, module, None)  # makes the import raise ImportError
    with pytest.raises(EdgekitError, match="pip install ai-edge-litert") as info:
        LiteRTRuntime(float_conv)
    assert "\n" not in str(info.value)


def test_invalid_threads(float_conv):
    with pytest.raises(EdgekitError, match="threads"):
        LiteRTRuntime(float_conv, threads=-1)
