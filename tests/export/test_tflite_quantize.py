"""Full-integer int8 quantization of the NHWC TFLite graph: spec-conformant params, no requantize ops, real
LiteRT runs with and without XNNPACK, and parity against the fp32 graph."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import DataError, ExportError
from edgekit.export.tflite.calibrate import calibrate_ranges
from edgekit.export.tflite.ir import Graph, Op
from edgekit.export.tflite.quantize import (
    activation_quant,
    quantize_graph,
    quantize_per_channel,
    shared_quant_classes,
)
from edgekit.export.tflite.shuffle import lower_shuffles
from edgekit.export.tflite.writer import write_tflite

SHAPE = (1, 16, 16, 3)


def _conv(g: Graph, rng, x: str, out_c: int, k: int, name: str, **options) -> str:
    in_c = g.shape(x)[3]
    n, h, w, _ = g.shape(x)
    w_ = g.add_constant(name + "_filter", rng.normal(0, (2 / (k * k * in_c)) ** 0.5, (out_c, k, k, in_c)).astype("f4"))
    b = g.add_constant(name + "_bias", rng.normal(0, 0.1, out_c).astype("f4"))
    out = g.add_tensor(name, (n, h, w, out_c))
    g.ops.append(Op("CONV_2D", [x, w_, b], [out], {"stride": (1, 1), "padding": "SAME", **options}, name))
    return out


def small_graph(seed: int = 0) -> Graph:
    """conv+relu -> pad -> maxpool -> (identity, depthwise) -> concat -> shuffle -> split -> 1x1 conv on one half
    -> concat -> mean -> fully connected: every op kind of ShuffleNetV2, at 16x16."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_tensor("input", SHAPE)
    g.inputs.append(x)
    a = _conv(g, rng, x, 8, 3, "conv1", activation="RELU")
    ap = g.add_tensor("conv1_padded", (1, 18, 18, 8))
    g.ops.append(Op("PAD", [a, g.int32_constant("paddings", [[0, 0], [1, 1], [1, 1], [0, 0]])], [ap]))
    m = g.add_tensor("pool", (1, 8, 8, 8))
    g.ops.append(Op("MAX_POOL_2D", [ap], [m], {"filter": (3, 3), "stride": (2, 2), "padding": "VALID"}))
    dw = g.add_constant("dw_filter", rng.normal(0, 0.4, (1, 3, 3, 8)).astype("f4"))
    db = g.add_constant("dw_bias", rng.normal(0, 0.1, 8).astype("f4"))
    b = g.add_tensor("dw", (1, 8, 8, 8))
    g.ops.append(Op("DEPTHWISE_CONV_2D", [m, dw, db], [b], {"stride": (1, 1), "padding": "SAME",
                                                           "depth_multiplier": 1}))
    c = g.add_tensor("cat1", (1, 8, 8, 16))
    g.ops.append(Op("CONCATENATION", [m, b], [c], {"axis": 3}))
    s = g.add_tensor("shuffled", (1, 8, 8, 16))
    g.ops.append(Op("SHUFFLE", [c], [s], {"groups": 2}))
    s1, s2 = g.add_tensor("half1", (1, 8, 8, 8)), g.add_tensor("half2", (1, 8, 8, 8))
    g.ops.append(Op("SPLIT", [g.int32_constant("split_axis", np.array(3)), s], [s1, s2], {"num_splits": 2}))
    t = _conv(g, rng, s2, 8, 1, "conv2", activation="RELU")
    u = g.add_tensor("cat2", (1, 8, 8, 16))
    g.ops.append(Op("CONCATENATION", [s1, t], [u], {"axis": 3}))
    v = g.add_tensor("mean", (1, 1, 1, 16))
    g.ops.append(Op("MEAN", [u, g.int32_constant("mean_axes", [1, 2])], [v], {"keep_dims": True}))
    f = g.add_tensor("flat", (1, 16))
    g.ops.append(Op("RESHAPE", [v, g.int32_constant("flat_shape", [1, 16])], [f], {"new_shape": (1, 16)}))
    fw = g.add_constant("fc_weights", rng.normal(0, 0.25, (10, 16)).astype("f4"))
    fb = g.add_constant("fc_bias", rng.normal(0, 0.1, 10).astype("f4"))
    y = g.add_tensor("logits", (1, 10))
    g.ops.append(Op("FULLY_CONNECTED", [f, fw, fb], [y], {}))
    g.outputs.append(y)
    assert lower_shuffles(g, "reshape") == 1
    return g


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (count, *SHAPE[1:])).astype(np.float32)


def interpreter(content: bytes, xnnpack: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    it = Interpreter(model_content=content, num_threads=1, **kwargs)
    it.allocate_tensors()
    return it


def delegate_partitions(it) -> int:
    """XNNPACK partitions: after delegation the node list ends with one DELEGATE node per partition."""
    inner = it._interpreter
    return sum("delegate" in inner.NodeName(i).lower() for i in range(inner.NumNodes()))


def fully_delegated(it) -> bool:
    """One partition that reads the model input and writes the model output runs every op."""
    inner = it._interpreter
    (node,) = [i for i in range(inner.NumNodes()) if "delegate" in inner.NodeName(i).lower()]
    return (set(inner.InputIndices()) <= set(inner.NodeInputs(node))
            and set(inner.NodeOutputs(node)) == set(inner.OutputIndices()))


def run(content: bytes, x_nhwc: np.ndarray, xnnpack: bool = True) -> np.ndarray:
    """Float outputs for float inputs, quantizing/dequantizing at an int8 model's boundary."""
    it = interpreter(content, xnnpack)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for image in x_nhwc:
        feed = image[None]
        if inp["dtype"] == np.int8:
            scale, zero_point = inp["quantization"]
            feed = np.clip(np.round(feed / scale) + zero_point, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], feed)
        it.invoke()
        y = it.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero_point = out["quantization"]
            y = (y.astype(np.float32) - zero_point) * scale
        results.append(y)
    return np.concatenate(results)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def quantized():
    g = small_graph()
    ranges = calibrate_ranges(g, images(32, seed=1))
    return g, ranges, quantize_graph(g, ranges)


def test_activation_params_include_zero_and_nudge_like_tensorflow():
    q = activation_quant(0.5, 2.0)  # widened to [0, 2]
    assert q.zero_point[0] == -128 and q.scale[0] == pytest.approx(2.0 / 255)
    q = activation_quant(-1.0, 3.0)
    assert q.scale[0] == pytest.approx(4.0 / 255) and q.zero_point[0] == round(-128 + 1.0 / (4.0 / 255))
    q = activation_quant(-3.0, -1.0)  # widened to [-3, 0]
    assert q.zero_point[0] == 127
    q = activation_quant(0.0, 0.0)
    assert (q.scale[0], q.zero_point[0]) == (1.0, -128)


def test_per_channel_weights_are_symmetric_narrow_range():
    w = np.array([[[[1.0, -2.0]]], [[[0.0, 0.0]]], [[[0.5, 0.25]]]], dtype=np.float32)  # (3,1,1,2)
    q, quant = quantize_per_channel(w, 0)
    assert q.dtype == np.int8 and q.min() >= -127
    np.testing.assert_allclose(quant.scale, [2 / 127, 1.0, 0.5 / 127], rtol=1e-6)
    assert list(q[0].ravel()) == [64, -127] and list(q[2].ravel()) == [127, 64]
    assert not quant.zero_point.any() and quant.axis == 0


def test_calibrated_ranges_are_post_activation(quantized):
    g, ranges, _ = quantized
    float_activations = {n for n, t in g.tensors.items() if t.dtype == "float32" and not t.is_constant}
    assert set(ranges) == float_activations
    assert ranges["conv1"][0] >= 0 and ranges["conv2"][0] >= 0  # the fused ReLU's output
    assert ranges["dw"][0] < 0 < ranges["dw"][1]
    assert ranges["input"][0] < -2 and ranges["input"][1] > 2


def test_graph_input_is_untouched(quantized):
    g, ranges, _ = quantized
    before = write_tflite(g)
    quantize_graph(g, ranges, io="float")
    assert write_tflite(g) == before


def test_int8_spec_params(quantized):
    g, _, q = quantized
    for t in q.tensors.values():
        assert t.dtype in ("int8", "int32"), t.name
    for op in q.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            x, w, b = (q.tensors[n] for n in op.inputs)
            axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
            assert w.dtype == "int8" and w.quant.axis == axis and len(w.quant.scale) == w.shape[axis]
            assert not w.quant.zero_point.any() and np.abs(w.data.astype(int)).max() == 127
            assert b.dtype == "int32" and not b.quant.zero_point.any()
            np.testing.assert_allclose(b.quant.scale, x.quant.scale[0] * w.quant.scale, rtol=1e-6)
    # int32 shape/axis constants are kept as they are.
    for name, t in g.tensors.items():
        if t.dtype == "int32":
            np.testing.assert_array_equal(q.tensors[name].data, t.data)


def test_shared_params_across_layout_ops(quantized):
    _, _, q = quantized
    for op in q.ops:
        if op.kind in ("CONCATENATION", "SPLIT", "RESHAPE", "TRANSPOSE", "PAD", "MAX_POOL_2D"):
            data = [n for n in op.inputs if q.tensors[n].dtype == "int8"] + op.outputs
            params = {(float(q.tensors[n].quant.scale[0]), int(q.tensors[n].quant.zero_point[0])) for n in data}
            assert len(params) == 1, (op.kind, data, params)


def test_one_class_spans_concat_shuffle_split_and_the_next_concat():
    classes = shared_quant_classes(small_graph())
    (members,) = [m for m in classes.values() if "cat1" in m]
    assert {"pool", "dw", "cat1", "shuffled", "half1", "half2", "conv2", "cat2"} <= set(members)
    assert "mean" not in members and "conv1" in members  # PAD -> MAX_POOL share with conv1's output


@pytest.mark.parametrize("xnnpack", [True, False])
def test_int8_model_runs_with_no_requantize_ops_and_matches_fp32(quantized, xnnpack):
    g, _, q = quantized
    content = write_tflite(q)
    assert "QUANTIZE" not in q.histogram() and "DEQUANTIZE" not in q.histogram()
    it = interpreter(content, xnnpack)
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8
    if xnnpack:
        assert delegate_partitions(it) == 1 and fully_delegated(it)
    x = images(16, seed=2)
    got = run(content, x, xnnpack)
    assert cosine(got, run(write_tflite(g), x, False)) > 0.99
    if xnnpack:  # XNNPACK and the reference kernels round differently, by at most an output step or two
        step = float(q.tensors["logits"].quant.scale[0])
        assert np.abs(got - run(content, x, False)).max() <= 2.01 * step


def test_float_io_wraps_the_int8_graph(quantized):
    g, ranges, q = quantized
    f = quantize_graph(g, ranges, io="float")
    hist = f.histogram()
    assert hist["QUANTIZE"] == 1 and hist["DEQUANTIZE"] == 1
    assert f.ops[0].kind == "QUANTIZE" and f.ops[-1].kind == "DEQUANTIZE"
    assert f.tensors[f.inputs[0]].dtype == "float32" and f.tensors[f.outputs[0]].dtype == "float32"
    content = write_tflite(f)
    it = interpreter(content, True)
    assert delegate_partitions(it) == 1 and fully_delegated(it)
    x = images(8, seed=3)
    got = run(content, x)
    np.testing.assert_allclose(got, run(write_tflite(q), x), atol=float(q.tensors["logits"].quant.scale[0]) * 1.01)
    assert cosine(got, run(write_tflite(g), x, False)) > 0.99


def test_quantization_is_deterministic(quantized):
    g, ranges, q = quantized
    assert write_tflite(quantize_graph(g, ranges)) == write_tflite(q)
    assert write_tflite(quantize_graph(g, calibrate_ranges(g, images(32, seed=1)))) == write_tflite(q)


def test_padv2_padding_and_fixed_output_ops():
    g = Graph()
    x = g.add_tensor("input", (1, 6, 6, 4))
    g.inputs.append(x)
    fill = g.add_constant("fill", np.array(np.finfo(np.float32).min, dtype=np.float32))
    p = g.add_tensor("padded", (1, 8, 8, 4))
    g.ops.append(Op("PADV2", [x, g.int32_constant("paddings", [[0, 0], [1, 1], [1, 1], [0, 0]]), fill], [p]))
    m = g.add_tensor("pool", (1, 4, 4, 4))
    g.ops.append(Op("MAX_POOL_2D", [p], [m], {"filter": (2, 2), "stride": (2, 2), "padding": "VALID"}))
    y = g.add_tensor("sigmoid", (1, 4, 4, 4))
    g.ops.append(Op("LOGISTIC", [m], [y]))
    g.outputs.append(y)
    x_ = np.random.default_rng(0).normal(0, 1, (8, 6, 6, 4)).astype(np.float32)
    q = quantize_graph(g, calibrate_ranges(g, x_))
    pad = q.tensors[q.ops[0].inputs[2]]
    assert pad.dtype == "int8" and int(pad.data) == -128 and pad.quant.scale[0] == q.tensors["input"].quant.scale[0]
    out = q.tensors["sigmoid"].quant
    assert (out.scale[0], out.zero_point[0]) == (np.float32(1 / 256), -128)
    content = write_tflite(q)
    np.testing.assert_allclose(run(content, x_, False), run(write_tflite(g), x_, False), atol=0.02)


def test_percentile_ranges_are_inside_minmax(quantized):
    g, minmax, _ = quantized
    clipped = calibrate_ranges(g, images(8, seed=1), method="percentile", percentile=99.0)
    for name, (lo, hi) in clipped.items():
        assert minmax[name][0] - 1e-6 <= lo <= hi <= minmax[name][1] + 1e-6
    assert clipped["input"][1] < minmax["input"][1]


def test_bad_inputs_raise_clear_errors():
    g = small_graph()
    with pytest.raises(DataError, match="calibration images have shape"):
        calibrate_ranges(g, np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ExportError, match="calibration method"):
        calibrate_ranges(g, images(1, 0), method="entropy")
    with pytest.raises(ExportError, match="no calibrated range"):
        quantize_graph(g, {})
    with pytest.raises(ExportError, match="io type"):
        quantize_graph(g, {}, io="uint16")
    g.ops.append(Op("TOPK_V2", [g.outputs[0]], [g.add_tensor("g", (1, 10))], {}, "topk_node"))
    with pytest.raises(ExportError, match="TOPK_V2.*topk_node"):
        quantize_graph(g, {})


@pytest.mark.slow
def test_shufflenet_v2_x0_5_int8_parity():
    import torch

    from edgekit.data import bundled_images, load_inputs, preprocess
    from edgekit.export.onnx_export import simplify, torch_to_onnx
    from edgekit.export.passes import apply_shuffle_passes
    from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
    from edgekit.models import resolve

    h = resolve("shufflenet_v2_x0_5")
    m, _, _ = apply_shuffle_passes(simplify(torch_to_onnx(h.module, h.input_shape)), "reshape")
    g, layout_transposes = onnx_to_tflite_graph(m)
    lower_shuffles(g, "reshape")
    calib = load_inputs(None, 16, h.input_shape, h.mean, h.std).array.transpose(0, 2, 3, 1)
    q = quantize_graph(g, calibrate_ranges(g, calib))
    assert "QUANTIZE" not in q.histogram()
    content = write_tflite(q)
    it = interpreter(content, True)
    assert delegate_partitions(it) == 1 and fully_delegated(it)

    x = preprocess(bundled_images(16, size=tuple(h.input_shape[2:]), seed=1), h.mean, h.std)
    with torch.no_grad():
        ref = h.module(torch.from_numpy(x)).numpy()
    got = run(content, x.transpose(0, 2, 3, 1))
    reference_kernels = run(content, x.transpose(0, 2, 3, 1), xnnpack=False)
    per_image = float(np.mean([cosine(a, b) for a, b in zip(got, ref, strict=True)]))
    top1 = float(np.mean(got.argmax(1) == ref.argmax(1)))
    print(f"x0_5 int8 vs torch fp32: cosine {cosine(got, ref):.4f} (per image {per_image:.4f}), top-1 {top1:.3f}")
    # edgekit's deterministic init is hard on int8: this random trunk amplifies any perturbation (XNNPACK's
    # and the reference kernels' requantization differ by 1 LSB on 0.1% of the first layer's outputs and
    # end up only 0.84 alike), and the classifier, centred on the mean feature, reads out the small
    # deviation from it. ONNX Runtime's static int8 quantizer reaches 0.74 here and PyTorch fake-quant 0.65;
    # this guards against regressions, not accuracy on trained weights.
    assert cosine(got, ref) > 0.7 and cosine(reference_kernels, ref) > 0.7
