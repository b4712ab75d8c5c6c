"""int8 for every op kind the general ONNX -> TFLite lowering emits: one hand-built graph per kind, quantized,
written and run in LiteRT (reference kernels and XNNPACK), and compared with the same graph in float.

An op with an int8 kernel must come out within a few quantization steps of float; an op with none runs in
float between a DEQUANTIZE and a QUANTIZE, consecutive ones in one island.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_tflite_quantize import cosine, interpreter, run

from edgekit.errors import ExportError
from edgekit.export.tflite.calibrate import calibrate_ranges
from edgekit.export.tflite.inspect import undelegated_ops
from edgekit.export.tflite.ir import Graph, Op
from edgekit.export.tflite.quantize import (
    FLOAT_OPS,
    LOGISTIC_SATURATION,
    NO_INT8_KERNEL,
    QUANTIZABLE_OPS,
    SILU_INPUT_FLOOR,
    int8_plan,
    quantize_graph,
)
from edgekit.export.tflite.writer import write_tflite

SHAPE = (1, 8, 8, 8)


def _graph() -> tuple[Graph, str]:
    g = Graph()
    x = g.add_tensor("input", SHAPE)
    g.inputs.append(x)
    return g, x


def _op(g: Graph, kind: str, inputs: list[str], shape, **options) -> str:
    out = g.add_tensor(kind.lower(), shape)
    g.ops.append(Op(kind, inputs, [out], options, kind.lower() + "_node"))
    return out


def _halves(g: Graph, x: str) -> tuple[str, str]:
    a, b = g.add_tensor("a", SHAPE[:3] + (4,)), g.add_tensor("b", SHAPE[:3] + (4,))
    g.ops.append(Op("SPLIT", [g.int32_constant("split_axis", np.array(3)), x], [a, b], {"num_splits": 2}))
    return a, b


def unary(kind: str, shape=SHAPE, **options):
    def build():
        g, x = _graph()
        g.outputs.append(_op(g, kind, [x], shape, **options))
        return g
    return build


def broadcast_to():
    g, x = _graph()
    m = _op(g, "MEAN", [x, g.int32_constant("axes", [1, 2])], (1, 1, 1, 8), keep_dims=True)
    g.outputs.append(_op(g, "BROADCAST_TO", [m, g.int32_constant("to_shape", list(SHAPE))], SHAPE))
    return g


def binary(kind: str):
    """``kind`` of the two channel halves of the input: two activations with different ranges."""
    def build():
        g, x = _graph()
        a, b = _halves(g, x)
        g.outputs.append(_op(g, kind, [a, b], g.shape(a)))
        return g
    return build


def with_constant(kind: str, value):
    def build():
        g, x = _graph()
        c = g.add_constant(kind.lower() + "_operand", np.asarray(value, np.float32))
        g.outputs.append(_op(g, kind, [x, c], SHAPE))
        return g
    return build


def prelu():
    g, x = _graph()
    alpha = g.add_constant("alpha", np.linspace(0.05, 0.4, SHAPE[3]).astype(np.float32).reshape(1, 1, 1, -1))
    g.outputs.append(_op(g, "PRELU", [x, alpha], SHAPE))
    return g


def reduce(kind: str, axes, shape):
    def build():
        g, x = _graph()
        g.outputs.append(_op(g, kind, [x, g.int32_constant("axes", axes)], shape, keep_dims=True))
        return g
    return build


def batch_matmul():
    """Attention-style scores: tokens (8, 8, 8) times themselves transposed, both inputs activations."""
    g, x = _graph()
    t = _op(g, "RESHAPE", [x, g.int32_constant("tokens_shape", [8, 8, 8])], (8, 8, 8), new_shape=(8, 8, 8))
    k = _op(g, "MUL", [t, g.add_constant("key_scale", np.float32(0.5))], (8, 8, 8))
    g.outputs.append(_op(g, "BATCH_MATMUL", [t, k], (8, 8, 8), adj_y=True))
    return g


def gather():
    g, x = _graph()
    index = g.int32_constant("index", [6, 1, 1, 3])
    g.outputs.append(_op(g, "GATHER", [x, index], SHAPE[:3] + (4,), axis=3))
    return g


def strided_slice():
    g, x = _graph()
    begin, end = g.int32_constant("begin", [0, 1, 0, 0]), g.int32_constant("end", [1, 8, 8, 8])
    strides = g.int32_constant("strides", [1, 2, 1, 1])
    g.outputs.append(_op(g, "STRIDED_SLICE", [x, begin, end, strides], (1, 4, 8, 8)))
    return g


def mirror_pad():
    g, x = _graph()
    paddings = g.int32_constant("paddings", [[0, 0], [2, 2], [1, 1], [0, 0]])
    g.outputs.append(_op(g, "MIRROR_PAD", [x, paddings], (1, 12, 10, 8), mode="REFLECT"))
    return g


def resize(kind: str, **options):
    def build():
        g, x = _graph()
        g.outputs.append(_op(g, kind, [x, g.int32_constant("size", [16, 16])], (1, 16, 16, 8), **options))
        return g
    return build


def transpose_conv():
    """A stride-2 2x2 transposed convolution (PyTorch's ConvTranspose2d(8, 6, 2, 2)), OHWI filter, with bias."""
    g, x = _graph()
    rng = np.random.default_rng(0)
    w = g.add_constant("deconv_filter", rng.normal(0, 0.3, (6, 2, 2, 8)).astype(np.float32))
    b = g.add_constant("deconv_bias", rng.normal(0, 0.1, 6).astype(np.float32))
    shape = g.int32_constant("output_shape", [1, 16, 16, 6])
    g.outputs.append(_op(g, "TRANSPOSE_CONV", [shape, w, x, b], (1, 16, 16, 6), stride=(2, 2), padding="VALID"))
    return g


def softmax():
    g, x = _graph()
    g.outputs.append(_op(g, "SOFTMAX", [x], SHAPE, beta=1.0))
    return g


def normal(lo_hi=None):
    def sample(count: int, seed: int) -> np.ndarray:
        x = np.random.default_rng(seed).normal(0, 1.5, (count, *SHAPE[1:])).astype(np.float32)
        return x if lo_hi is None else np.clip(np.abs(x), *lo_hi)
    return sample


POSITIVE = normal((0.25, 4.0))

# kind -> (graph builder, input sampler); every kind the lowering emits that has an int8 kernel.
INT8_CASES = {
    "SUB": (binary("SUB"), normal()),
    "SUB_constant": (with_constant("SUB", np.linspace(-1, 1, 8).reshape(1, 1, 1, 8)), normal()),
    "MAXIMUM": (binary("MAXIMUM"), normal()),
    "MAXIMUM_constant": (with_constant("MAXIMUM", 0.25), normal()),
    "MINIMUM": (binary("MINIMUM"), normal()),
    "SQUARED_DIFFERENCE": (binary("SQUARED_DIFFERENCE"), normal()),
    "SQUARE": (unary("SQUARE"), normal()),
    "RSQRT": (unary("RSQRT"), POSITIVE),
    "LOG": (unary("LOG"), POSITIVE),
    "EXP": (unary("EXP"), normal()),
    "ABS": (unary("ABS"), normal()),
    "TANH": (unary("TANH"), normal()),
    "LOGISTIC": (unary("LOGISTIC"), normal()),
    "GELU": (unary("GELU"), normal()),
    "GELU_tanh": (unary("GELU", approximate=True), normal()),
    "HARD_SWISH": (unary("HARD_SWISH"), normal()),
    "LEAKY_RELU": (unary("LEAKY_RELU", alpha=0.1), normal()),
    "PRELU": (prelu, normal()),
    "RELU_N1_TO_1": (unary("RELU_N1_TO_1"), normal()),
    "RELU_0_TO_1": (unary("RELU_0_TO_1"), normal()),
    "ELU": (unary("ELU"), normal()),
    "SOFTMAX": (softmax, normal()),
    "BATCH_MATMUL": (batch_matmul, normal()),
    "SUM": (reduce("SUM", [1, 2], (1, 1, 1, 8)), normal()),
    "REDUCE_MAX": (reduce("REDUCE_MAX", [3], (1, 8, 8, 1)), normal()),
    "GATHER": (gather, normal()),
    "STRIDED_SLICE": (strided_slice, normal()),
    "MIRROR_PAD": (mirror_pad, normal()),
    "RESIZE_NEAREST_NEIGHBOR": (resize("RESIZE_NEAREST_NEIGHBOR", half_pixel_centers=True), normal()),
    "RESIZE_BILINEAR": (resize("RESIZE_BILINEAR", half_pixel_centers=True), normal()),
    "RESIZE_BILINEAR_align_corners": (resize("RESIZE_BILINEAR", align_corners=True), normal()),
    "TRANSPOSE_CONV": (transpose_conv, normal()),
    "REDUCE_MIN": (reduce("REDUCE_MIN", [3], (1, 8, 8, 1)), normal()),
    "DEPTH_TO_SPACE": (unary("DEPTH_TO_SPACE", (1, 16, 16, 2), block_size=2), normal()),
    "BROADCAST_TO": (broadcast_to, normal()),
    "DIV": (with_constant("DIV", np.linspace(0.5, 2, 8).reshape(1, 1, 1, 8)), normal()),
    "DIV_activations": (binary("DIV"), POSITIVE),
    "SQRT": (unary("SQRT"), POSITIVE),
    "NEG": (unary("NEG"), normal()),
}
CASES = {**INT8_CASES, "POW": (with_constant("POW", 0.5), POSITIVE)}

# What XNNPACK runs in int8 (measured on LiteRT 2.3); the other int8 kernels run on LiteRT's own.
XNNPACK_INT8 = {"SUB", "SUB_constant", "SQUARE", "TANH", "LOGISTIC", "LEAKY_RELU", "ELU", "SUM", "REDUCE_MAX",
                "RESIZE_BILINEAR", "RESIZE_BILINEAR_align_corners", "TRANSPOSE_CONV", "REDUCE_MIN", "DEPTH_TO_SPACE"}


def _kind(case: str) -> str:
    return next(k for k in sorted(FLOAT_OPS) + sorted(QUANTIZABLE_OPS) + ["SQUARE"] if case.startswith(k)
                and case[len(k):] in ("", "_constant", "_activations", "_tanh", "_align_corners"))


def _xnnpack_partitions_and_output(content: bytes) -> tuple[int, bool]:
    """XNNPACK's partitions of a model and whether one of them writes the model's output (for these
    graphs, whether XNNPACK runs the op under test)."""
    inner = interpreter(content, True)._interpreter
    delegates = [i for i in range(inner.NumNodes()) if inner.NodeName(i) == "DELEGATE"]
    written = {t for i in delegates for t in inner.NodeOutputs(i)}
    return len(delegates), set(inner.OutputIndices()) <= written


def _quantized(build, sample, float_ops=FLOAT_OPS):
    g = build()
    ranges = calibrate_ranges(g, sample(32, seed=1))
    return g, quantize_graph(g, ranges, float_ops=float_ops)


def _output_step(q: Graph) -> float:
    return float(q.tensors[q.outputs[0]].quant.scale[0])


def _representable(q: Graph, y: np.ndarray) -> np.ndarray:
    """``y`` clipped to what the int8 output can hold (test images may exceed the calibrated range)."""
    quant = q.tensors[q.outputs[0]].quant
    scale, zero_point = float(quant.scale[0]), int(quant.zero_point[0])
    return np.clip(y, (-128 - zero_point) * scale, (127 - zero_point) * scale)


def _on_int8_input(q: Graph, x: np.ndarray) -> np.ndarray:
    """``x`` rounded to the int8 model's input codes: the float reference then differs from the int8 model
    only by the op's own rounding, not by the input's (which a steep op like EXP amplifies)."""
    quant = q.tensors[q.inputs[0]].quant
    scale, zero_point = float(quant.scale[0]), int(quant.zero_point[0])
    return ((np.clip(np.round(x / scale) + zero_point, -128, 127) - zero_point) * scale).astype(np.float32)


@pytest.mark.parametrize("case", sorted(INT8_CASES))
@pytest.mark.parametrize("xnnpack", [False, True])
def test_int8_op_matches_float_within_a_few_steps(case, xnnpack):
    """Every int8 kernel LiteRT has, XNNPACK's where it has one: ``float_ops=NO_INT8_KERNEL`` quantizes even
    the ops that the default keeps in float for XNNPACK."""
    build, sample = INT8_CASES[case]
    g, q = _quantized(build, sample, NO_INT8_KERNEL)
    assert "QUANTIZE" not in q.histogram() and "DEQUANTIZE" not in q.histogram()
    assert all(t.dtype in ("int8", "int32") for t in q.tensors.values()), case
    x = _on_int8_input(q, sample(8, seed=2))
    want = _representable(q, run(write_tflite(g), x, False))
    content = write_tflite(q)
    got = run(content, x, xnnpack)
    if xnnpack:
        assert _xnnpack_partitions_and_output(content)[1] == (case in XNNPACK_INT8)
    error = np.abs(got - want).max() / _output_step(q)
    assert error <= 4.0, f"{case}: off by {error:.1f} output steps"
    assert cosine(got, want) > 0.995


@pytest.mark.parametrize("kind", ["LOGISTIC", "SOFTMAX", "TANH"])
def test_fixed_output_params(kind):
    _, q = _quantized(*INT8_CASES[kind], NO_INT8_KERNEL)
    out = q.tensors[q.outputs[0]].quant
    want = {"TANH": (1 / 128, 0)}.get(kind, (1 / 256, -128))
    assert (float(out.scale[0]), int(out.zero_point[0])) == (np.float32(want[0]), want[1])


@pytest.mark.parametrize("case", ["MAXIMUM", "MAXIMUM_constant", "GATHER", "STRIDED_SLICE", "MIRROR_PAD",
                                  "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "REDUCE_MAX"])
def test_selection_ops_share_params_between_inputs_and_output(case):
    _, q = _quantized(*INT8_CASES[case], NO_INT8_KERNEL)
    (op,) = [op for op in q.ops if op.kind not in ("SPLIT",)]
    data = [n for n in op.inputs if n and q.tensors[n].dtype == "int8"] + op.outputs
    params = {(float(q.tensors[n].quant.scale[0]), int(q.tensors[n].quant.zero_point[0])) for n in data}
    assert len(data) >= 2 and len(params) == 1, params


def test_transpose_conv_has_per_channel_weights_on_the_output_axis_and_an_int32_bias():
    _, q = _quantized(*INT8_CASES["TRANSPOSE_CONV"])
    (op,) = q.ops
    shape, w, x, b = (q.tensors[n] for n in op.inputs)
    assert shape.dtype == "int32" and w.dtype == "int8" and x.dtype == "int8" and b.dtype == "int32"
    assert w.quant.axis == 0 and len(w.quant.scale) == 6 and not w.quant.zero_point.any()
    np.testing.assert_allclose(b.quant.scale, x.quant.scale[0] * w.quant.scale, rtol=1e-6)


@pytest.mark.parametrize("case", sorted(c for c in CASES if _kind(c) in FLOAT_OPS))
def test_op_kept_in_float_runs_between_dequantize_and_quantize_in_one_xnnpack_partition(case):
    build, sample = CASES[case]
    g, q = _quantized(build, sample)
    kind = _kind(case)
    assert int8_plan(g).float_ops == {kind: [kind.lower() + "_node"]}
    hist = q.histogram()
    (op,) = [op for op in g.ops if op.kind == kind]
    dynamic = {n for n in op.inputs if n and not g.tensors[n].is_constant and g.tensors[n].dtype == "float32"}
    assert hist["DEQUANTIZE"] == len(dynamic) and hist["QUANTIZE"] == 1
    (op,) = [op for op in q.ops if op.kind == kind]
    assert all(q.tensors[n].dtype in ("float32", "int32") for n in op.inputs + op.outputs if n)
    assert q.tensors[q.inputs[0]].dtype == "int8" and q.tensors[q.outputs[0]].dtype == "int8"
    content = write_tflite(q)
    # DEQUANTIZE and QUANTIZE join XNNPACK's partition around a float op it runs; around POW they are alone
    assert _xnnpack_partitions_and_output(content) == ((2, True) if kind in NO_INT8_KERNEL else (1, True))
    x = _on_int8_input(q, sample(8, seed=2))
    want = _representable(q, run(write_tflite(g), x, False))
    for xnnpack in (False, True):
        got = run(content, x, xnnpack)
        assert np.abs(got - want).max() / _output_step(q) <= 2.0 and cosine(got, want) > 0.995


def _island_graph() -> Graph:
    """conv -> DIV -> SQRT -> POW (one float island) -> ADD -> DIV (a second island) -> output, plus a
    constant that both an int8 ADD and a float DIV read."""
    g, x = _graph()
    rng = np.random.default_rng(3)
    w = g.add_constant("conv_filter", rng.normal(0, 0.3, (8, 1, 1, 8)).astype(np.float32))
    b = g.add_constant("conv_bias", np.full(8, 3.0, np.float32))
    c = _op(g, "CONV_2D", [x, w, b], SHAPE, stride=(1, 1), padding="SAME", activation="RELU")
    shared = g.add_constant("shared", np.linspace(0.5, 2, 8, dtype=np.float32).reshape(1, 1, 1, 8))
    d = _op(g, "DIV", [c, shared], SHAPE)
    s = _op(g, "SQRT", [d], SHAPE)
    p = _op(g, "POW", [s, g.add_constant("exponent", np.array(3.0, np.float32))], SHAPE)
    a = _op(g, "ADD", [p, shared], SHAPE)
    g.outputs.append(_op(g, "DIV", [a, g.add_constant("two", np.array(2.0, np.float32))], SHAPE))
    return g


@pytest.mark.parametrize("io", ["int8", "float"])
def test_consecutive_float_ops_share_one_island(io):
    g = _island_graph()
    x = normal()(8, seed=2)
    q = quantize_graph(g, calibrate_ranges(g, normal()(32, seed=1)), io=io)
    kinds = [op.kind for op in q.ops]
    body = [k for k in kinds if k not in ("QUANTIZE", "DEQUANTIZE")]
    assert body == ["CONV_2D", "DIV", "SQRT", "POW", "ADD", "DIV"]
    # conv | DQ DIV SQRT POW Q | ADD | DQ DIV (Q at the output for int8 io; stays float for float io)
    edges = {"int8": ["DEQUANTIZE", "QUANTIZE", "DEQUANTIZE", "QUANTIZE"],
             "float": ["QUANTIZE", "DEQUANTIZE", "QUANTIZE", "DEQUANTIZE"]}[io]
    assert [k for k in kinds if k in ("QUANTIZE", "DEQUANTIZE")] == edges
    assert kinds.index("DEQUANTIZE") == kinds.index("CONV_2D") + 1
    plan = int8_plan(g)
    assert plan.float_ops == {"DIV": ["div_node", "div_node"], "SQRT": ["sqrt_node"], "POW": ["pow_node"]}
    note = plan.note()
    assert all(kind in note and FLOAT_OPS[kind] in note for kind in plan.float_ops)
    want = run(write_tflite(g), x, False)
    got = run(write_tflite(q), x)
    assert cosine(got, want) > 0.995


def test_int8_plan_lists_every_op_kind_without_a_mapping_at_once():
    g, x = _graph()
    t = _op(g, "TOPK_V2", [x], SHAPE)
    u = _op(g, "CUMSUM", [t], SHAPE)
    g.outputs.append(_op(g, "ADD", [u, _op(g, "TOPK_V2", [u], SHAPE)], SHAPE))
    with pytest.raises(ExportError, match=r"2 op kind\(s\): TOPK_V2 \(nodes topk_v2_node.*CUMSUM \(node cumsum"):
        int8_plan(g)
    assert int8_plan(_island_graph()).note() is not None and int8_plan(unary("RELU")()).note() is None


def test_unsupported_model_fails_before_any_calibration_work(tmp_path):
    """An op the lowering refuses is reported from the fp32 graph, before equalization, GPTQ or calibration."""
    import textwrap
    import time

    from edgekit.export.tflite_export import export_tflite

    factory = tmp_path / "warp.py"
    factory.write_text(textwrap.dedent("""
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Warp(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3, padding=1)
                self.flow = nn.Conv2d(8, 2, 1)

            def forward(self, x):
                y = torch.relu(self.conv(x))
                grid = torch.tanh(self.flow(y)).permute(0, 2, 3, 1)
                return F.grid_sample(y, grid, align_corners=False)

        def warp():
            return Warp()
    """))
    said: list[str] = []
    start = time.perf_counter()
    with pytest.raises(ExportError, match=r"GridSample \(node"):
        export_tflite(f"{factory}:warp", int8=True, input_shape=(1, 3, 16, 16), output_dir=tmp_path / "o",
                      progress=said.append)
    elapsed = time.perf_counter() - start
    assert not [m for m in said if any(w in m for w in ("equaliz", "calibrat", "GPTQ", "rounding"))], said
    assert elapsed < 20, f"{elapsed:.1f} s"  # torch.onnx.export and onnxsim take most of it
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_sigmoid_and_silu_inputs_keep_only_the_range_their_readers_resolve():
    """A LOGISTIC-only input is clipped where the int8 sigmoid saturates; a SiLU input (x * LOGISTIC(x))
    stops at -6, below which SiLU is within 0.015 of 0: finer steps, outputs as close to float."""
    wide = lambda count, seed: np.random.default_rng(seed).uniform(-10, 10, (count, *SHAPE[1:])).astype(np.float32)  # noqa: E731
    g, x = _graph()
    g.outputs.append(_op(g, "LOGISTIC", [x], SHAPE))
    q = quantize_graph(g, calibrate_ranges(g, wide(8, 1)))
    quant = q.tensors["input"].quant
    assert float(quant.scale[0]) == pytest.approx(2 * LOGISTIC_SATURATION / 255, rel=0.01)
    test = wide(4, 2)
    got, want = run(write_tflite(q), test, False), run(write_tflite(g), test, False)
    # inputs past the clipped range (up to 10) cost nothing: one output step plus half an input step's worth
    assert np.abs(got - want).max() <= 1 / 256 + 0.25 * float(quant.scale[0]) / 2 + 1e-4

    g, x = _graph()
    s = _op(g, "LOGISTIC", [x], SHAPE)
    g.outputs.append(_op(g, "MUL", [x, s], SHAPE))
    q = quantize_graph(g, calibrate_ranges(g, wide(8, 1)))
    quant = q.tensors["input"].quant
    lowest = (-128 - int(quant.zero_point[0])) * float(quant.scale[0])
    assert SILU_INPUT_FLOOR - 0.05 <= lowest <= SILU_INPUT_FLOOR + 0.05
    got, want = run(write_tflite(q), test, False), run(write_tflite(g), test, False)
    assert np.abs(got - want).max() <= 2 * _output_step(q) + 1.1 * float(quant.scale[0]) / 2


def test_export_notes_the_ops_kept_in_float_and_shows_their_edges(tmp_path):
    """HardSwish runs in float inside XNNPACK's partition (its int8 kernel would leave it): the report says
    so in one note, the histogram counts the DEQUANTIZE/QUANTIZE pair, and parity holds."""
    import textwrap

    from edgekit.export.tflite_export import export_tflite

    factory = tmp_path / "hs.py"
    factory.write_text(textwrap.dedent("""
        import torch.nn as nn

        def net():
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardswish(),
                                 nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(8, 4))
    """))
    result = export_tflite(f"{factory}:net", int8=True, input_shape=(1, 3, 32, 32), output_dir=tmp_path / "o",
                           calib=16, samples=4, equalize=False, optimal_rounding=False)
    (note,) = [n for n in result.notes if "kept in float" in n]
    assert "HARD_SWISH x1" in note and "XNNPACK" in note
    # DEQUANTIZE + QUANTIZE at each uint8 edge (delegate_uint8_edges) and around the island
    assert result.op_histogram["HARD_SWISH"] == 1 and result.op_histogram["DEQUANTIZE"] == 3
    assert result.op_histogram["QUANTIZE"] == 3
    assert result.xnnpack_partitions == 1 and result.parity.passed
    assert undelegated_ops(Path(result.path).read_bytes()) == []


def test_an_op_with_weights_can_run_in_float_with_float_weights():
    """Mixed precision: a DEPTHWISE_CONV_2D named in ``float_ops`` keeps float weights inside its island."""
    g, x = _graph()
    rng = np.random.default_rng(4)
    w = g.add_constant("dw_filter", rng.normal(0, 0.4, (1, 3, 3, 8)).astype(np.float32))
    b = g.add_constant("dw_bias", rng.normal(0, 0.1, 8).astype(np.float32))
    d = _op(g, "DEPTHWISE_CONV_2D", [x, w, b], SHAPE, stride=(1, 1), padding="SAME", depth_multiplier=1)
    g.outputs.append(_op(g, "RELU", [d], SHAPE))
    q = quantize_graph(g, calibrate_ranges(g, normal()(16, seed=1)),
                       float_ops={**FLOAT_OPS, "DEPTHWISE_CONV_2D": "kept in float"})
    assert [op.kind for op in q.ops] == ["DEQUANTIZE", "DEPTHWISE_CONV_2D", "QUANTIZE", "RELU"]
    assert q.tensors["dw_filter"].dtype == "float32" and q.tensors["dw_bias"].dtype == "float32"
    x_ = _on_int8_input(q, normal()(4, seed=2))
    got, want = run(write_tflite(q), x_), _representable(q, run(write_tflite(g), x_, False))
    assert np.abs(got - want).max() <= 2.01 * _output_step(q)  # the island exit, then RELU, round once each


@pytest.mark.parametrize("epsilon", [1e-6, 0.5])
def test_a_constant_addend_is_quantized_on_its_partners_scale_and_stays_in_xnnpack(epsilon):
    # A norm's x + epsilon: on its own range epsilon would get scale ~4e-9, 10^6 from the activation's, which
    # XNNPACK's int8 ADD refuses (one partition more per norm).
    from edgekit.export.tflite.inspect import xnnpack_partitions

    rng = np.random.default_rng(0)
    images = (np.abs(rng.normal(size=(8, *SHAPE[1:]))) + 0.1).astype(np.float32)
    g, x = _graph()
    a = _op(g, "ADD", [x, x], SHAPE)
    eps = g.add_constant("eps", np.array(epsilon, np.float32))
    b = g.add_tensor("b", SHAPE)
    g.ops.append(Op("ADD", [a, eps], [b], {}, "eps_node"))
    out = g.add_tensor("out", SHAPE)
    g.ops.append(Op("ADD", [b, b], [out], {}, "out_node"))
    g.outputs.append(out)
    q = quantize_graph(g, calibrate_ranges(g, images), io="int8")
    assert q.tensors[eps].quant.scale[0] == q.tensors[a].quant.scale[0]
    assert xnnpack_partitions(write_tflite(q)) == 1
    assert cosine(run(write_tflite(g), images[:4]), run(write_tflite(q), images[:4])) > 0.999


def _layer_norm(g: Graph, x: str) -> str:
    """LayerNorm over channels as the lowering emits it: MEAN, SUB, MUL(d, d), MEAN, ADD eps, RSQRT, MUL, MUL
    gamma, ADD beta."""
    stat = SHAPE[:3] + (1,)
    axes = g.int32_constant("norm_axes", [3])
    mean = _op(g, "MEAN", [x, axes], stat, keep_dims=True)
    d = g.add_tensor("centered", SHAPE)
    g.ops.append(Op("SUB", [x, mean], [d], {}, "norm"))
    sq = g.add_tensor("square", SHAPE)
    g.ops.append(Op("MUL", [d, d], [sq], {}, "norm"))
    var = g.add_tensor("var", stat)
    g.ops.append(Op("MEAN", [sq, axes], [var], {"keep_dims": True}, "norm"))
    var_eps = g.add_tensor("var_eps", stat)
    g.ops.append(Op("ADD", [var, g.add_constant("eps", np.array(1e-5, np.float32))], [var_eps], {}, "norm"))
    rstd = g.add_tensor("rstd", stat)
    g.ops.append(Op("RSQRT", [var_eps], [rstd], {}, "norm"))
    normed = g.add_tensor("normed", SHAPE)
    g.ops.append(Op("MUL", [d, rstd], [normed], {}, "norm"))
    gamma = g.add_constant("gamma", np.linspace(0.5, 1.5, SHAPE[3], dtype=np.float32))
    scaled = g.add_tensor("scaled", SHAPE)
    g.ops.append(Op("MUL", [normed, gamma], [scaled], {}, "norm"))
    out = g.add_tensor("out", SHAPE)
    g.ops.append(Op("ADD", [scaled, g.add_constant("beta", np.full(SHAPE[3], 0.1, np.float32))], [out], {}, "norm"))
    return out


def _tokens_of_many_scales(count: int, seed: int) -> np.ndarray:
    """Pixels whose channel vectors differ in spread by 100x, as transformer tokens do."""
    rng = np.random.default_rng(seed)
    spread = np.exp(rng.uniform(np.log(0.05), np.log(5.0), (count, *SHAPE[1:3], 1)))
    return (rng.normal(0, 1, (count, *SHAPE[1:])) * spread + rng.normal(0, 1, (count, *SHAPE[1:3], 1))).astype(
        np.float32)


def test_a_norms_variance_and_reciprocal_root_run_in_float(monkeypatch):
    """Per-tensor int8 steps of the variance are coarse next to small variances, and 1/sqrt magnifies the
    error for those tokens: the centering, the square, its MEAN, the epsilon ADD, RSQRT and the MUL that
    applies it stay in float, inside one XNNPACK partition, and the output is as close to float as its
    own int8 step allows."""
    from edgekit.export.tflite import quantize
    from edgekit.export.tflite.inspect import xnnpack_partitions

    g, x = _graph()
    g.outputs.append(_layer_norm(g, x))
    chain = [op.outputs[0] for op in quantize.norm_statistics_ops(g)]
    assert chain == ["mean", "centered", "square", "var", "var_eps", "rstd", "normed"]
    plan = int8_plan(g)
    assert plan.float_ops[quantize.NORM_STATISTICS_KEY] == ["mean_node"] + ["norm"] * 5
    assert plan.float_ops["RSQRT"] == ["norm"]
    ranges = calibrate_ranges(g, _tokens_of_many_scales(32, seed=1))
    q = quantize_graph(g, ranges)
    assert all(q.tensors[n].dtype == "float32" for n in chain)
    assert q.histogram()["DEQUANTIZE"] == 1 and q.histogram()["QUANTIZE"] == 1
    content = write_tflite(q)
    assert xnnpack_partitions(content) == 1
    test = _on_int8_input(q, _tokens_of_many_scales(8, seed=2))
    want = run(write_tflite(g), test, False)
    got = run(content, test)
    assert cosine(got, want) > 0.999
    monkeypatch.setattr(quantize, "norm_statistics_ops", lambda graph: [])
    all_int8 = run(write_tflite(quantize_graph(g, ranges)), test)
    assert 1 - cosine(all_int8, want) > 10 * (1 - cosine(got, want))
