"""OnnxRuntime against PyTorch on real exports: parity, threads, optimisation levels, layouts, batches."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from runtime_models import INPUT_SHAPE, random_input, torch_reference

from edgekit.errors import DataError, EdgekitError, ModelFileError
from edgekit.runtimes.onnx_runtime import OnnxRuntime


@pytest.mark.parametrize("threads", [1, 2])
def test_matches_torch(cnn, cnn_onnx, threads):
    x = random_input()
    with OnnxRuntime(cnn_onnx, threads=threads) as rt:
        (y,) = rt.run(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, torch_reference(cnn, x), atol=1e-5, rtol=0)


def test_describes_model(cnn_onnx):
    with OnnxRuntime(cnn_onnx, threads=2, optimization="basic") as rt:
        assert rt.name == "onnxruntime"
        assert rt.version == __import__("onnxruntime").__version__
        assert rt.settings == {"threads": 2, "optimization": "basic"}
        assert rt.precision == "fp32"
        (spec,) = rt.inputs
        assert spec.shape == INPUT_SHAPE
        assert (spec.dtype, spec.layout, spec.scale, spec.zero_point) == ("float32", "NCHW", None, None)
        assert [o.shape for o in rt.outputs] == [(1, 5)]
        assert rt.outputs[0].layout is None


def test_optimization_levels_agree(cnn, cnn_onnx):
    x = random_input(seed=7)
    expected = torch_reference(cnn, x)
    for level in ("disable", "basic", "extended", "all"):
        with OnnxRuntime(cnn_onnx, optimization=level) as rt:
            np.testing.assert_allclose(rt.run(x)[0], expected, atol=1e-5, rtol=0, err_msg=level)


def test_fixed_batch_model_runs_larger_batch_sample_by_sample(cnn, cnn_onnx):
    x = random_input((3, *INPUT_SHAPE[1:]))
    with OnnxRuntime(cnn_onnx) as rt:
        (y,) = rt.run(x)
    assert y.shape == (3, 5)
    np.testing.assert_allclose(y, torch_reference(cnn, x), atol=1e-5, rtol=0)


def test_dynamic_batch_model(cnn, cnn_onnx_dynamic):
    x = random_input((4, *INPUT_SHAPE[1:]))
    with OnnxRuntime(cnn_onnx_dynamic) as rt:
        assert rt.inputs[0].shape == (None, 3, 16, 16)
        (y,) = rt.run(x)
    np.testing.assert_allclose(y, torch_reference(cnn, x), atol=1e-5, rtol=0)


def test_nhwc_model_takes_nchw_and_returns_nchw(channels_last_model, channels_last_onnx):
    x = random_input()  # NCHW
    with OnnxRuntime(channels_last_onnx) as rt:
        assert rt.inputs[0].layout == "NHWC"
        assert rt.inputs[0].shape == (1, 16, 16, 3)
        assert rt.outputs[0].layout == "NHWC"
        (y,) = rt.run(x)
    expected = torch_reference(channels_last_model, x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert y.shape == (1, 6, 16, 16)
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=0)


def test_float64_input_is_accepted(cnn, cnn_onnx):
    x = random_input()
    with OnnxRuntime(cnn_onnx) as rt:
        np.testing.assert_allclose(rt.run(x.astype(np.float64))[0], rt.run(x)[0], atol=0, rtol=0)


def test_wrong_shape_and_dtype_raise_data_error(cnn_onnx):
    with OnnxRuntime(cnn_onnx) as rt:
        with pytest.raises(DataError, match="1x3x8x8 does not fit") as info:
            rt.run(random_input((1, 3, 8, 8)))
        assert "\n" not in str(info.value)
        with pytest.raises(DataError, match="uint8"):
            rt.run(np.zeros(INPUT_SHAPE, dtype=np.uint8))
        with pytest.raises(DataError, match="does not fit"):
            rt.run(random_input((1, 3, 16)))


def test_invalid_options(cnn_onnx):
    with pytest.raises(EdgekitError, match="optimization level 'max'"):
        OnnxRuntime(cnn_onnx, optimization="max")
    with pytest.raises(EdgekitError, match="threads"):
        OnnxRuntime(cnn_onnx, threads=0)


def test_closed_runtime_refuses_to_run(cnn_onnx):
    rt = OnnxRuntime(cnn_onnx)
    rt.close()
    rt.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        rt.run(random_input())


def _save(model: onnx.ModelProto, path) -> str:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def test_qdq_uint8_io_is_quantised_and_dequantised(tmp_path):
    # uint8 in -> DequantizeLinear -> Relu -> QuantizeLinear -> uint8 out, as ORT's QDQ tools emit it.
    in_scale, in_zp, out_scale, out_zp = 0.05, 128, 0.02, 3
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["x", "s_in", "z_in"], ["xf"]),
            helper.make_node("Relu", ["xf"], ["yf"]),
            helper.make_node("QuantizeLinear", ["yf", "s_out", "z_out"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 3, 4, 4])],
        initializer=[
            helper.make_tensor("s_in", TensorProto.FLOAT, [], [in_scale]),
            helper.make_tensor("z_in", TensorProto.UINT8, [], [in_zp]),
            helper.make_tensor("s_out", TensorProto.FLOAT, [], [out_scale]),
            helper.make_tensor("z_out", TensorProto.UINT8, [], [out_zp]),
        ],
    )
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "q.onnx")
    x = np.random.default_rng(0).uniform(-8, 8, (1, 3, 4, 4)).astype(np.float32)
    with OnnxRuntime(path) as rt:
        (spec_in,), (spec_out,) = rt.inputs, rt.outputs
        assert (spec_in.dtype, spec_in.scale, spec_in.zero_point) == ("uint8", pytest.approx(0.05), 128)
        assert (spec_out.dtype, spec_out.scale, spec_out.zero_point) == ("uint8", pytest.approx(0.02), 3)
        assert rt.precision == "int8"
        (y,) = rt.run(x)
    xq = np.clip(np.rint(x / np.float32(in_scale)) + in_zp, 0, 255)
    real = np.maximum((xq - in_zp) * np.float32(in_scale), 0)
    yq = np.clip(np.rint(real / np.float32(out_scale)) + out_zp, 0, 255)
    np.testing.assert_allclose(y, (yq - out_zp) * np.float32(out_scale), atol=1e-6, rtol=0)
    # Values beyond the uint8 range saturate rather than wrap.
    assert y.max() == pytest.approx((255 - out_zp) * out_scale, abs=1e-6)


def test_integer_input_without_scale_is_rejected(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        "ints",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "i.onnx")
    with pytest.raises(ModelFileError, match="'x' is int64") as info:
        OnnxRuntime(path)
    assert "\n" not in str(info.value)


def test_a_model_with_two_inputs_takes_one_array_per_input(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["c"])],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4])],
    )
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "two.onnx")
    a, b = np.arange(8, dtype=np.float32).reshape(2, 4), np.ones((2, 4), np.float32)
    with OnnxRuntime(path) as rt:
        assert [spec.name for spec in rt.inputs] == ["a", "b"]
        np.testing.assert_array_equal(rt.run([a, b])[0], a - b)  # two runs of the fixed batch 1, in order
        with pytest.raises(DataError, match="got 1 input arrays but the model takes 2 .a, b.; pass one array"):
            rt.run(a)
        with pytest.raises(DataError, match="batches do not match"):
            rt.run([a, b[:1]])


def test_qdq_model_with_float_io_reports_int8(tmp_path):
    # ORT's quantize_static default: float in and out, QuantizeLinear/DequantizeLinear inside.
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
        ],
        "qdq_float_io",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
        initializer=[
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
            helper.make_tensor("z", TensorProto.INT8, [], [0]),
        ],
    )
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "f.onnx")
    with OnnxRuntime(path) as rt:
        assert rt.inputs[0].dtype == "float32" and rt.inputs[0].scale is None
        assert rt.precision == "int8"
        x = np.array([0.04, 0.05, 0.26, 20.0] * 12, np.float32).reshape(1, 3, 4, 4)
        (y,) = rt.run(x)
    assert y.ravel()[:4].tolist() == pytest.approx([0.0, 0.0, 0.3, 12.7])  # ties to even; saturates at 127
