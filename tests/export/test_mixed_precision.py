"""Mixed precision in TFLite int8: single ops kept in float by name (``quantize_graph(float_nodes=...)``), the
first-layers policy shared with ONNX (``grow_float_prefix``), and its TFLite mapping
(``quantize_with_float_fallback``), run in LiteRT with and without XNNPACK."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from test_tflite_quantize import cosine, run

from edgekit.cli import main
from edgekit.errors import ExportError
from edgekit.export.float_first_layers import FloatLayers, float_prefix_in, grow_float_prefix
from edgekit.export.tflite.calibrate import calibrate_ranges
from edgekit.export.tflite.inspect import xnnpack_partitions
from edgekit.export.tflite.ir import Graph, Op
from edgekit.export.tflite.mixed_precision import layer_macs, quantize_with_float_fallback
from edgekit.export.tflite.quantize import quantize_graph
from edgekit.export.tflite.writer import write_tflite

SHAPE = (1, 16, 16, 3)


def stem_net(seed: int = 0) -> Graph:
    """A MobileNet-style start: conv 3x3 stride 2 (RELU6) -> depthwise 3x3 (RELU6) -> conv 1x1 -> conv 1x1
    (RELU6, output 0: features) -> mean -> fully connected (output 1: logits). Three stem channels are 50x
    smaller than the rest and the depthwise layer gives them 50x gains, as BatchNorm does to channels with
    little variance: their quantization noise is amplified."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_tensor("input", SHAPE)
    g.inputs.append(x)

    def conv(x: str, out_c: int, k: int, name: str, stride: int = 1, activation: str = "RELU6") -> str:
        n, h, w, in_c = g.shape(x)
        filters = rng.normal(0, (2 / (k * k * in_c)) ** 0.5, (out_c, k, k, in_c)).astype(np.float32)
        w_ = g.add_constant(name + "_filter", filters)
        b = g.add_constant(name + "_bias", rng.normal(0, 0.1, out_c).astype(np.float32))
        out = g.add_tensor(name, (n, h // stride, w // stride, out_c))
        g.ops.append(Op("CONV_2D", [x, w_, b], [out],
                        {"stride": (stride, stride), "padding": "SAME", "activation": activation}, name))
        return out

    a = conv(x, 8, 3, "stem", stride=2)
    gains = np.ones(8, np.float32)
    gains[:3] = 50.0
    g.tensors["stem_filter"].data[:3] /= gains[:3, None, None, None]
    dw_w = g.add_constant("dw_filter", (rng.normal(0, 0.3, (1, 3, 3, 8)) * gains).astype(np.float32))
    dw_b = g.add_constant("dw_bias", rng.normal(0, 0.1, 8).astype(np.float32))
    d = g.add_tensor("dw", (1, 8, 8, 8))
    g.ops.append(Op("DEPTHWISE_CONV_2D", [a, dw_w, dw_b], [d], {"stride": (1, 1), "padding": "SAME",
                                                                "depth_multiplier": 1, "activation": "RELU6"}, "dw"))
    p = conv(d, 16, 1, "project", activation="NONE")
    e = conv(p, 32, 1, "expand")
    m = g.add_tensor("mean", (1, 1, 1, 32))
    g.ops.append(Op("MEAN", [e, g.int32_constant("mean_axes", [1, 2])], [m], {"keep_dims": True}))
    f = g.add_tensor("flat", (1, 32))
    g.ops.append(Op("RESHAPE", [m, g.int32_constant("flat_shape", [1, 32])], [f], {"new_shape": (1, 32)}))
    fw = g.add_constant("fc_weights", rng.normal(0, 0.25, (10, 32)).astype(np.float32))
    fb = g.add_constant("fc_bias", rng.normal(0, 0.1, 10).astype(np.float32))
    y = g.add_tensor("logits", (1, 10))
    g.ops.append(Op("FULLY_CONNECTED", [f, fw, fb], [y], {}, "fc"))
    g.outputs += [e, y]
    return g


def pixels(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (count, *SHAPE[1:])).astype(np.float32)


@pytest.fixture(scope="module")
def calibrated():
    g = stem_net()
    return g, calibrate_ranges(g, pixels(16, seed=1))


@pytest.mark.parametrize("io", ["int8", "uint8", "float"])
def test_named_ops_run_in_float_inside_one_xnnpack_partition(calibrated, io):
    g, ranges = calibrated
    q = quantize_graph(g, ranges, io=io, float_nodes={"stem", "dw"})
    kinds = [op.kind for op in q.ops]
    body = [k for k in kinds if k not in ("QUANTIZE", "DEQUANTIZE")]
    assert body == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "CONV_2D", "MEAN", "RESHAPE", "FULLY_CONNECTED"]
    # one island: DEQUANTIZE of the input in front of the stem, QUANTIZE of dw's output behind it
    first = kinds.index("CONV_2D")
    assert kinds[first - 1] == "DEQUANTIZE" and kinds[first + 2] == "QUANTIZE"
    # uint8 edges are DEQUANTIZE + QUANTIZE (delegate_uint8_edges); the island reads the input edge's floats
    assert kinds.count("DEQUANTIZE") == 1 + (len(g.outputs) if io != "int8" else 0)
    stem, dw, project = [op for op in q.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")][:3]
    for op in (stem, dw):  # float data, float weights and biases
        assert {q.tensors[n].dtype for n in op.inputs + op.outputs if n} == {"float32"}
    assert [q.tensors[n].dtype for n in project.inputs] == ["int8", "int8", "int32"]
    content = write_tflite(q)
    assert xnnpack_partitions(content) == 1
    if io == "uint8":  # run() feeds int8 or float
        return
    x = pixels(8, seed=2)
    want = run(write_tflite(g), x, False)
    for xnnpack in (False, True):
        got = run(content, x, xnnpack)
        assert cosine(got, want) > 0.995


def test_keeping_the_sensitive_first_layers_in_float_brings_int8_closer_to_float(calibrated):
    g, ranges = calibrated
    x = pixels(8, seed=3)
    want = run(write_tflite(g), x, False)
    int8 = cosine(run(write_tflite(quantize_graph(g, ranges)), x), want)
    mixed = cosine(run(write_tflite(quantize_graph(g, ranges, float_nodes={"stem", "dw"})), x), want)
    assert 1 - mixed < 0.5 * (1 - int8), (int8, mixed)


def test_float_nodes_must_name_an_op_output(calibrated):
    g, ranges = calibrated
    with pytest.raises(ExportError, match="float_nodes names tensors no op produces first: dw_filter"):
        quantize_graph(g, ranges, float_nodes={"dw_filter"})


def test_layer_macs_count_output_elements_times_each_outputs_inputs(calibrated):
    g, _ = calibrated
    assert layer_macs(g) == {"stem": 8 * 8 * 8 * 27, "dw": 8 * 8 * 8 * 9, "project": 8 * 8 * 16 * 8,
                             "expand": 8 * 8 * 32 * 16, "logits": 10 * 32}


def test_the_shared_policy_grows_until_the_target_within_the_budget():
    scores = [0.96, 0.97, 0.979, 0.986, 0.99]
    asked: list[int] = []

    def score(k: int) -> float:
        asked.append(k)
        return scores[k]

    shares = [0.02, 0.05, 0.08, 0.12]
    assert grow_float_prefix(shares, score, target=0.985, max_macs=0.15) == FloatLayers(3, 0.08, 0.96, 0.986)
    assert asked == [0, 1, 2, 3]  # stops once the target is met
    # the budget stops it first: the best within the budget wins
    assert grow_float_prefix(shares, score, target=0.985, max_macs=0.06) == FloatLayers(2, 0.05, 0.96, 0.979)
    # a prefix that does not help is not taken; nothing helps: all int8
    assert grow_float_prefix(shares, lambda k: [0.97, 0.96, 0.975, 0.974, 0.99][k], max_macs=0.1).convs == 2
    assert grow_float_prefix(shares, lambda k: 0.97 - k / 100, max_macs=0.5).convs == 0
    # a prefix that takes less than MIN_ERROR_CUT off the error does not pay for its float multiply-adds
    assert grow_float_prefix(shares, lambda k: 0.945 + k / 5000, max_macs=0.5) == FloatLayers(0, 0.0, 0.945, 0.945)


def test_float_fallback_measures_prefixes_in_litert_and_reports_them(calibrated):
    g, ranges = calibrated
    images = pixels(16, seed=1)
    q, chosen = quantize_with_float_fallback(g, ranges, images, target=0.0)
    assert chosen.convs == 0 and write_tflite(q) == write_tflite(quantize_graph(g, ranges))
    q, chosen = quantize_with_float_fallback(g, ranges, images, target=1.0, max_macs=0.6, io="uint8")
    macs = layer_macs(g)
    assert chosen.convs >= 1 and chosen.cosine_after > chosen.cosine_before
    assert chosen.layers == tuple(["stem", "dw", "project", "expand"][: chosen.convs])
    assert chosen.mac_share == pytest.approx(sum(macs[n] for n in chosen.layers) / sum(macs.values()))
    assert all(q.tensors[n].dtype == "float32" for n in chosen.layers)
    assert xnnpack_partitions(write_tflite(q)) == 1
    note = chosen.note()
    assert f"first {chosen.convs} convolutions ({', '.join(chosen.layers)})" in note
    assert f"{chosen.cosine_before:.5f} -> {chosen.cosine_after:.5f}" in note
    assert note.endswith("--no-float-first-layers quantizes them too")
    assert float_prefix_in(["calibration: minmax", note]) == f"first {chosen.convs} convolutions"
    assert float_prefix_in([FloatLayers(0, 0.0, 0.99, 0.99).note()]) is None  # "all layers int8: ..."


@pytest.mark.parametrize("io", ["int8", "float"])
def test_an_island_may_make_the_graph_outputs(calibrated, io):
    """Every op named: the ops making the outputs keep float weights, and the outputs get their edge op."""
    g, ranges = calibrated
    q = quantize_graph(g, ranges, io=io, float_nodes={op.outputs[0] for op in g.ops})
    assert all(t.dtype in ("float32", "int32") for n, t in q.tensors.items() if n not in q.inputs + q.outputs
               and not n.endswith("_int8"))
    assert [op.kind for op in q.ops].count("QUANTIZE") == {"int8": 2, "float": 1}[io]
    content = write_tflite(q)
    assert xnnpack_partitions(content) == 1
    x = pixels(4, seed=2)
    assert cosine(run(content, x), run(write_tflite(g), x, False)) > 0.9999


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_the_recipe_switches_the_float_fallback_off(tmp_path, fmt):
    """``Int8Recipe(float_first_layers=False)`` quantizes every layer and skips the measurement; the default
    measures and says what it found (the note is true of the file either way)."""
    from edgekit.export.request import ExportRequest, Int8Recipe, export

    factory = tmp_path / "net.py"
    factory.write_text("import torch.nn as nn\n\ndef net():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), "
                       "nn.ReLU(), nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n")
    notes = {}
    for on in (True, False):
        recipe = Int8Recipe(calib=8, equalize=False, optimal_rounding=False, float_first_layers=on)
        result = export(ExportRequest(f"{factory}:net", format=fmt, int8=recipe, input_shape=(1, 3, 16, 16),
                                      output_dir=tmp_path / str(on), samples=2))
        notes[on] = [n for n in result.notes if "cosine to fp32 on the calibration images" in n
                     or "from fp32 on the calibration images" in n]
    assert len(notes[True]) == 1 and notes[False] == []
    result = CliRunner().invoke(main, ["export", "--no-float-first-layers"])
    assert result.exit_code == 2 and "apply to --int8 exports" in result.output
