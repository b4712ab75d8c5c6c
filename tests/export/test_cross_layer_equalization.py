"""equalize_cross_layer: same function before and after, equal channel ranges where it rescaled, exact
pattern matching, shared weights, and bad calibration input; on small graphs and on a registry ShuffleNetV2."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import ExportError
from edgekit.export.cross_layer_equalization import EqualizationResult, equalize_cross_layer

CHANNELS = 8
SIZE = 8
# Channel ranges spanning three decades: what BatchNorm folding leaves in real networks, and what
# per-tensor int8 scales handle worst.
SPREAD = 10.0 ** np.linspace(-2, 1, CHANNELS)


# --- graphs -----------------------------------------------------------------------------------------------


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _conv(name: str, inputs: list[str], output: str, group: int = 1, pads: int = 0) -> onnx.NodeProto:
    return helper.make_node("Conv", inputs, [output], name=name, group=group, pads=[pads] * 4)


def _model(nodes, initializers, outputs, inputs=("x",), batch="N") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "cle",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, 3, SIZE, SIZE]) for name in inputs],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, None, None, None]) for name in outputs],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _block_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """pw 3->8 and dw 8 with per-channel magnitudes spread over SPREAD; pw2 8->6."""
    rng = np.random.default_rng(seed)
    return {
        "pw_w": rng.normal(size=(CHANNELS, 3, 1, 1)) * SPREAD[:, None, None, None],
        "pw_b": rng.uniform(0.0, 0.1, CHANNELS) * SPREAD,
        "dw_w": rng.normal(size=(CHANNELS, 1, 3, 3)) * rng.permutation(SPREAD)[:, None, None, None],
        "dw_b": rng.normal(size=CHANNELS) * 0.1,
        "pw2_w": rng.normal(size=(6, CHANNELS, 1, 1)),
        "pw2_b": rng.normal(size=6) * 0.1,
    }


def _block_nodes() -> list[onnx.NodeProto]:
    return [
        _conv("pw", ["x", "pw_w", "pw_b"], "pw_out"),
        helper.make_node("Relu", ["pw_out"], ["relu_out"], name="relu"),
        _conv("dw", ["relu_out", "dw_w", "dw_b"], "dw_out", group=CHANNELS, pads=1),
        _conv("pw2", ["dw_out", "pw2_w", "pw2_b"], "pw2_out"),
        helper.make_node("Relu", ["pw2_out"], ["y"], name="relu2"),
    ]


def block(seed: int = 0, batch="N") -> onnx.ModelProto:
    """x -> Conv1x1 -> Relu -> depthwise Conv3x3 -> Conv1x1 -> Relu -> y: one pair of each kind."""
    w = _block_weights(seed)
    nodes = _block_nodes()
    return _model(nodes, [_init(k, v) for k, v in w.items()], ["y"], batch=batch)


def images(count: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 3, SIZE, SIZE)).astype(np.float32)


# --- running ----------------------------------------------------------------------------------------------


def _session(model: onnx.ModelProto, extra_outputs=()) -> ort.InferenceSession:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for name in extra_outputs:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    """All graph outputs, one image at a time (the registry export has batch 1)."""
    session = _session(model)
    name = session.get_inputs()[0].name
    per_image = [session.run(None, {name: x[i : i + 1]}) for i in range(len(x))]
    return [np.concatenate(outs) for outs in zip(*per_image, strict=True)]


def channel_max(model: onnx.ModelProto, tensor: str, x: np.ndarray, absolute: bool = False) -> np.ndarray:
    """Per-channel max of ``tensor`` over ``x``, one image at a time."""
    session = _session(model, [tensor])
    name = session.get_inputs()[0].name
    value = np.concatenate([session.run([tensor], {name: x[i : i + 1]})[0] for i in range(len(x))])
    value = np.abs(value) if absolute else value
    return value.max(axis=(0, 2, 3))


def spread(maxima: np.ndarray) -> float:
    return float(maxima.max() / maxima.min())


def assert_same_outputs(before: onnx.ModelProto, after: onnx.ModelProto, x: np.ndarray) -> None:
    for y0, y1 in zip(run(before, x), run(after, x), strict=True):
        scale = max(float(np.abs(y0).max()), 1e-6)
        assert np.abs(y1 - y0).max() <= 1e-4 * scale, (np.abs(y1 - y0).max(), scale)


def weight(model: onnx.ModelProto, node_name: str, slot: int) -> np.ndarray:
    node = next(n for n in model.graph.node if n.name == node_name)
    init = next(i for i in model.graph.initializer if i.name == node.input[slot])
    return numpy_helper.to_array(init)


# --- the block --------------------------------------------------------------------------------------------


def test_equalized_block_computes_the_same():
    before = block()
    after, _ = equalize_cross_layer(before, images())
    onnx.checker.check_model(after, full_check=True)
    assert_same_outputs(before, after, images(4, seed=7))  # other images than the calibration ones


def test_pointwise_relu_output_channels_reach_the_same_maximum():
    before, x = block(), images()
    assert spread(channel_max(before, "relu_out", x)) > 100  # the premise: very unequal channels
    after, _ = equalize_cross_layer(before, x)
    assert spread(channel_max(after, "relu_out", x)) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_depthwise_output_spread_shrinks_to_its_power_one_minus_alpha(alpha):
    # r_c * (R / r_c) ** alpha = R ** alpha * r_c ** (1 - alpha): the max/min ratio goes to its (1 - alpha)th power.
    before, x = block(), images()
    spread_before = spread(channel_max(before, "dw_out", x, absolute=True))
    assert spread_before > 10
    after, _ = equalize_cross_layer(before, x, alpha=alpha)
    spread_after = spread(channel_max(after, "dw_out", x, absolute=True))
    assert spread_after == pytest.approx(spread_before ** (1 - alpha), rel=1e-4)


def test_result_counts_the_rescaled_pairs():
    _, result = equalize_cross_layer(block(), images())
    assert isinstance(result, EqualizationResult)
    assert (result.pairs_pointwise_depthwise, result.pairs_depthwise_pointwise) == (1, 1)
    assert len(result.details) == 2
    assert "'pw'" in result.details[0] and "'dw'" in result.details[0] and "'pw2'" in result.details[1]
    # The pw->dw scale is R / r_c over channels three decades apart.
    assert result.max_scale > 100


def test_input_model_is_not_modified():
    before = block()
    saved = before.SerializeToString()
    equalize_cross_layer(before, images())
    assert before.SerializeToString() == saved


def test_alpha_zero_leaves_depthwise_pointwise_pairs_alone():
    before = block()
    after, result = equalize_cross_layer(before, images(), alpha=0.0)
    assert (result.pairs_pointwise_depthwise, result.pairs_depthwise_pointwise) == (1, 0)
    np.testing.assert_array_equal(weight(after, "pw2", 1), weight(before, "pw2", 1))
    np.testing.assert_array_equal(weight(after, "dw", 2), weight(before, "dw", 2))
    assert not np.array_equal(weight(after, "dw", 1), weight(before, "dw", 1))  # pair (a) still divides it


def test_channel_that_never_fires_keeps_scale_one():
    before = block()
    pw_w = next(i for i in before.graph.initializer if i.name == "pw_w")
    pw_b = next(i for i in before.graph.initializer if i.name == "pw_b")
    w, b = numpy_helper.to_array(pw_w).copy(), numpy_helper.to_array(pw_b).copy()
    w[2], b[2] = 0.0, -1.0  # Relu output of channel 2 is 0 everywhere
    pw_w.CopyFrom(_init("pw_w", w))
    pw_b.CopyFrom(_init("pw_b", b))
    after, result = equalize_cross_layer(before, images(), alpha=0.0)  # only pair (a) touches dw_w
    assert np.isfinite(result.max_scale)
    np.testing.assert_array_equal(weight(after, "dw", 1)[2], weight(before, "dw", 1)[2])
    assert_same_outputs(before, after, images())


def test_fixed_batch_model_is_calibrated_image_by_image():
    before = block(batch=1)
    x = images(5)
    after, result = equalize_cross_layer(before, x)
    assert result.pairs_pointwise_depthwise == 1
    # The maxima over all five images, taken one at a time, are equal only if every image was seen.
    maxima = np.max([channel_max(after, "relu_out", x[i : i + 1]) for i in range(len(x))], axis=0)
    assert spread(maxima) == pytest.approx(1.0, abs=1e-4)
    assert_same_outputs(before, after, images(3, seed=9))


# --- patterns that must not match -------------------------------------------------------------------------


def _variant(kind: str) -> onnx.ModelProto:
    """The block with one thing changed so that one or both pairs no longer match exactly."""
    w = _block_weights()
    nodes = _block_nodes()
    inits = {k: _init(k, v) for k, v in w.items()}
    outputs, inputs = ["y"], ["x"]
    if kind == "relu output is a graph output":
        outputs.append("relu_out")
    elif kind == "pw output has a second reader":
        nodes.append(helper.make_node("Sigmoid", ["pw_out"], ["side"], name="side"))
        outputs.append("side")
    elif kind == "dw output has a second reader":
        nodes.append(helper.make_node("Sigmoid", ["dw_out"], ["side"], name="side"))
        outputs.append("side")
    elif kind == "dw weights are not constant":
        nodes.insert(0, helper.make_node("Identity", ["dw_w"], ["dw_w_runtime"], name="identity"))
        nodes[3] = _conv("dw", ["relu_out", "dw_w_runtime", "dw_b"], "dw_out", group=CHANNELS, pads=1)
    elif kind == "dw grouped in pairs":
        inits["dw_w"] = _init("dw_w", np.random.default_rng(3).normal(size=(CHANNELS, 2, 3, 3)))
        nodes[2] = _conv("dw", ["relu_out", "dw_w", "dw_b"], "dw_out", group=CHANNELS // 2, pads=1)
    elif kind == "Relu reads its input twice":
        nodes[1] = helper.make_node("Add", ["pw_out", "pw_out"], ["relu_out"], name="relu")
    else:
        raise AssertionError(kind)
    return _model(nodes, list(inits.values()), outputs, inputs=inputs)


@pytest.mark.parametrize(
    "kind, pairs",
    [
        ("relu output is a graph output", (0, 1)),
        ("pw output has a second reader", (0, 1)),
        ("dw output has a second reader", (1, 0)),
        ("dw weights are not constant", (0, 0)),
        ("dw grouped in pairs", (0, 0)),
        ("Relu reads its input twice", (0, 1)),
    ],
)
def test_inexact_patterns_are_skipped(kind, pairs):
    before = _variant(kind)
    after, result = equalize_cross_layer(before, images())
    assert (result.pairs_pointwise_depthwise, result.pairs_depthwise_pointwise) == pairs
    assert_same_outputs(before, after, images())


def test_graph_without_pattern_comes_back_unchanged():
    rng = np.random.default_rng(0)
    nodes = [
        _conv("a", ["x", "a_w"], "a_out", pads=1),
        helper.make_node("Relu", ["a_out"], ["r"], name="relu"),
        _conv("b", ["r", "b_w"], "y", pads=1),
    ]
    before = _model(nodes, [_init("a_w", rng.normal(size=(4, 3, 3, 3))), _init("b_w", rng.normal(size=(2, 4, 3, 3)))],
                    ["y"])
    after, result = equalize_cross_layer(before, images())
    assert result == EqualizationResult()
    assert after.SerializeToString() == before.SerializeToString()
    assert after is not before


def test_weights_shared_with_another_node_are_copied_before_scaling():
    # Two pointwise convs read the same weights; only one feeds a Relu -> depthwise pair.
    w = _block_weights()
    nodes = [
        _conv("pw", ["x", "pw_w", "pw_b"], "pw_out"),
        helper.make_node("Relu", ["pw_out"], ["relu_out"], name="relu"),
        _conv("dw", ["relu_out", "dw_w"], "y", group=CHANNELS, pads=1),
        _conv("twin", ["x", "pw_w", "pw_b"], "twin_out"),
        helper.make_node("Relu", ["twin_out"], ["y2"], name="relu_twin"),
    ]
    before = _model(nodes, [_init(k, w[k]) for k in ("pw_w", "pw_b", "dw_w")], ["y", "y2"])
    after, result = equalize_cross_layer(before, images())
    assert result.pairs_pointwise_depthwise == 1
    onnx.checker.check_model(after, full_check=True)
    np.testing.assert_array_equal(weight(after, "twin", 1), w["pw_w"].astype(np.float32))
    np.testing.assert_array_equal(weight(after, "twin", 2), w["pw_b"].astype(np.float32))
    assert not np.array_equal(weight(after, "pw", 1), weight(after, "twin", 1))
    assert_same_outputs(before, after, images())


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 3, SIZE, SIZE), np.float32),
        np.zeros((2, 4, SIZE, SIZE), np.float32),
        np.zeros((2, 3, SIZE + 1, SIZE), np.float32),
        np.zeros((3, SIZE, SIZE), np.float32),
        np.zeros((2, SIZE, SIZE, 3), np.float32),  # NHWC
        np.full((2, 3, SIZE, SIZE), np.nan, np.float32),
        np.array([["a"]]),
    ],
    ids=["empty", "channels", "height", "rank", "nhwc", "nan", "strings"],
)
def test_images_that_do_not_fit_raise_export_error(bad):
    with pytest.raises(ExportError) as info:
        equalize_cross_layer(block(), bad)
    assert "\n" not in str(info.value)


def test_image_count_not_a_multiple_of_a_fixed_batch_raises():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = _model(nodes, [], ["y"], batch=2)
    with pytest.raises(ExportError, match="multiple of 2"):
        equalize_cross_layer(model, images(3))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5"])
def test_alpha_outside_zero_one_raises(alpha):
    with pytest.raises(ExportError, match="alpha"):
        equalize_cross_layer(block(), images(), alpha=alpha)


# --- a registry network -----------------------------------------------------------------------------------


def _group(node: onnx.NodeProto) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)


@pytest.fixture(scope="module")
def shufflenet():
    from edgekit.export.onnx_export import simplify, torch_to_onnx
    from edgekit.export.passes import apply_shuffle_passes
    from edgekit.models import resolve

    handle = resolve("shufflenet_v2_x0_5")
    model, _, _ = apply_shuffle_passes(simplify(torch_to_onnx(handle.module, handle.input_shape, 17)), "reshape")
    x = np.random.default_rng(0).normal(size=(4, *handle.input_shape[1:])).astype(np.float32)
    return model, x


def test_shufflenet_v2_is_equalized_and_computes_the_same(shufflenet):
    before, x = shufflenet
    after, result = equalize_cross_layer(before, x)
    onnx.checker.check_model(after, full_check=True)
    # Every stride-1 branch and both branches of each downsampling block end pw -> Relu -> dw -> pw;
    # the 3 + 7 + 3 blocks of x0.5 give 3 + 13 = 16 pairs of each kind.
    assert result.pairs_pointwise_depthwise == 16, result.details
    assert result.pairs_depthwise_pointwise == 16 + 3, result.details
    assert_same_outputs(before, after, x[:2])
    # A Relu between a pointwise and a depthwise conv: its channels now share one maximum.
    producers = {o: n for n in before.graph.node for o in n.output}
    relu = next(n.input[0] for n in before.graph.node
                if n.op_type == "Conv" and _group(n) > 1 and producers[n.input[0]].op_type == "Relu")
    assert spread(channel_max(before, relu, x)) > 1.5
    assert spread(channel_max(after, relu, x)) == pytest.approx(1.0, abs=1e-4)
