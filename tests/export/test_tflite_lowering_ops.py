"""Pointwise and spatial ops through edgekit's real TFLite path (torch.onnx -> onnxsim -> passes -> lowering ->
writer), run in LiteRT with XNNPACK against PyTorch: fp32 error, one XNNPACK partition, refusals that say why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgekit.errors import ExportError
from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.passes import apply_shuffle_passes
from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph
from edgekit.export.tflite.inspect import xnnpack_partitions
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.litert_runtime import load_interpreter_module


class Fn(nn.Module):
    def __init__(self, fn, *modules):
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(modules)

    def forward(self, x):
        return self.fn(x, *self.layers) if self.layers else self.fn(x)


def lower(module: nn.Module, shape):
    onnx_model, _, _ = apply_shuffle_passes(simplify(torch_to_onnx(module.eval(), shape)), "reshape")
    graph, _ = onnx_to_tflite_graph(onnx_model)  # fuses spelled-out GELUs first
    return graph


def run(content: bytes, x_nhwc: np.ndarray, xnnpack: bool = True) -> np.ndarray:
    interpreter_class, resolver, *_ = load_interpreter_module()
    kernels = {} if xnnpack else {"experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = interpreter_class(model_content=content, num_threads=1, **kernels)  # XNNPACK by default
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x_nhwc)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def check(module: nn.Module, shape=(1, 4, 8, 8), partitions: int | None = 1, scale: float = 3.0, rtol=1e-5):
    """Lower ``module``, compare LiteRT with PyTorch on a random input; returns the graph's op kinds."""
    torch.manual_seed(0)
    module = module.eval()
    for p in module.parameters():  # nonzero biases and slopes make the checks sharper
        nn.init.uniform_(p, -1.0, 1.0)
    graph = lower(module, shape)
    content = write_tflite(graph)
    x = (np.random.default_rng(0).standard_normal(shape) * scale).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    if expected.ndim == 4:
        expected = expected.transpose(0, 2, 3, 1)
    for xnnpack in (True, False):  # XNNPACK and LiteRT's builtin kernels (what runs when it does not delegate)
        got = run(content, x.transpose(0, 2, 3, 1).copy(), xnnpack)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * max(1.0, float(np.abs(expected).max())),
                                   err_msg="XNNPACK" if xnnpack else "builtin kernels")
    if partitions is not None:
        assert xnnpack_partitions(content) == partitions, graph.histogram()
    return graph.histogram()


def conv(c=4, **kw):
    return nn.Conv2d(4, c, kw.pop("k", 3), **kw)


# --- activations ------------------------------------------------------------------------------------

@pytest.mark.parametrize("act,kinds", [
    (nn.ReLU(), set()), (nn.ReLU6(), set()), (nn.Hardtanh(), set()),  # fused into the conv
    (lambda x: x.clamp(0, 1), {"MINIMUM"}), (lambda x: x.clamp(-0.5, 0.7), {"MAXIMUM", "MINIMUM"}),
    (lambda x: x.clamp(min=0.25), {"MAXIMUM"}), (lambda x: x.clamp(max=0.25), {"MINIMUM"}),
    (nn.Hardswish(), {"HARD_SWISH"}), (nn.Hardsigmoid(), {"MUL"}), (nn.Sigmoid(), {"LOGISTIC"}),
    (nn.SiLU(), {"LOGISTIC", "MUL"}), (nn.Tanh(), {"TANH"}), (nn.LeakyReLU(0.1), {"LEAKY_RELU"}),
    (nn.PReLU(4), {"PRELU"}), (nn.PReLU(), {"PRELU"}), (nn.ELU(), {"ELU"}),
    (nn.GELU(), {"GELU"}), (nn.GELU(approximate="tanh"), {"GELU"}),
    (lambda x: torch.exp(x * 0.1), {"EXP"}), (lambda x: torch.log(x.abs() + 0.5), {"LOG", "ABS"}),
    (lambda x: torch.sqrt(x.abs()), {"SQRT", "ABS"}), (lambda x: -x, {"NEG"}),
    (lambda x: torch.reciprocal(x.abs() + 1.0), {"DIV", "ABS"}),
], ids=lambda v: v.__class__.__name__ if isinstance(v, nn.Module) else None)
def test_activation_after_conv(act, kinds):
    module = Fn(lambda x, c, a: a(c(x)), conv(), act if isinstance(act, nn.Module) else Fn(act))
    histogram = check(module)
    assert kinds <= set(histogram) and set(histogram) <= {"CONV_2D", "ADD"} | kinds


def test_hardsigmoid_with_onnx_default_alpha():
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 4])
    model = helper.make_model(helper.make_graph([helper.make_node("HardSigmoid", ["x"], ["y"], alpha=0.2)], "g",
                                                [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    graph, _ = onnx_to_tflite_graph(model)
    v = np.linspace(-4, 4, 24, dtype=np.float32).reshape(1, 2, 3, 4)
    got = run(write_tflite(graph), v.transpose(0, 2, 3, 1).copy()).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, np.clip(0.2 * v + 0.5, 0, 1), atol=1e-6)


def test_erf_outside_gelu_is_refused():
    with pytest.raises(ExportError, match=r"Erf .*no erf"):
        lower(Fn(lambda x: torch.erf(x) * 2.0), (1, 4, 8, 8))


# --- convolutions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,kind", [
    (nn.Conv2d(4, 6, 3, padding=2, dilation=2), "CONV_2D"),
    (nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2), "CONV_2D"),
    (nn.Conv2d(4, 4, 3, padding=3, dilation=3, groups=4), "DEPTHWISE_CONV_2D"),
    (nn.Conv2d(4, 8, 5, padding=2, groups=4), "DEPTHWISE_CONV_2D"),
    (nn.Conv2d(4, 4, 7, stride=2, padding=3, groups=4), "DEPTHWISE_CONV_2D"),
    (nn.Conv2d(4, 6, 3, padding=1, groups=2), "CONV_2D"),
    (nn.Conv2d(4, 8, 1, groups=4), "DEPTHWISE_CONV_2D"),  # one input channel per group: depth multiplier 2
])
def test_convolutions(layer, kind):
    assert kind in check(layer, shape=(1, 4, 12, 12))


def test_grouped_conv_many_groups():
    check(nn.Conv2d(16, 24, 3, padding=1, groups=8), shape=(1, 16, 10, 10))


@pytest.mark.parametrize("layer,extra", [
    (nn.ConvTranspose2d(4, 6, 2, stride=2), set()),  # VALID
    (nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1), set()),  # SAME
    (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), {"SLICE"}),
    (nn.ConvTranspose2d(4, 6, 3, stride=1, padding=1), set()),
    (nn.ConvTranspose2d(4, 6, 2, stride=2, output_padding=1), set()),  # VALID: the extra row is the bias
    (nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0)), {"SLICE"}),
    (nn.ConvTranspose2d(4, 6, 3, stride=3, padding=1, output_padding=2), {"PAD", "SLICE"}),  # past the full output
], ids=["k2s2", "k4s2p1", "k3s2p1op1", "k3s1p1", "k2s2op1", "k3x2s2x1", "k3s3p1op2"])
def test_transposed_convolutions(layer, extra):
    assert set(check(layer, shape=(1, 4, 7, 8))) == {"TRANSPOSE_CONV"} | extra


def test_grouped_transposed_convolution_is_refused():
    with pytest.raises(ExportError, match="grouped transposed"):
        lower(nn.ConvTranspose2d(4, 4, 2, stride=2, groups=2), (1, 4, 6, 6))


# --- pooling ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool", [
    nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.AvgPool2d(3, 1, 1),
    nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.AvgPool2d(3, 2, 0, ceil_mode=True),
    nn.AvgPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    nn.AvgPool2d(2, 2, ceil_mode=True), nn.AvgPool2d(2),
], ids=lambda p: f"k{p.kernel_size}s{p.stride}p{p.padding}c{int(p.ceil_mode)}i{int(p.count_include_pad)}")
@pytest.mark.parametrize("size", [7, 8])
def test_average_pool(pool, size):
    check(pool, shape=(1, 4, size, size))


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(3, 2, ceil_mode=True), nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.MaxPool2d(3, 2, 1),
    nn.MaxPool2d(2, 2, ceil_mode=True), nn.AdaptiveMaxPool2d(1),
], ids=lambda p: repr(p))
@pytest.mark.parametrize("relu", [False, True])
def test_max_pool(pool, relu):
    module = Fn(lambda x, c, p: p(c(x).relu() if relu else c(x)), conv(), pool)
    histogram = check(module, shape=(1, 4, 9, 9))
    assert "PADV2" not in histogram


def test_global_max_pool():
    class GlobalMax(nn.Module):
        def forward(self, x):
            return torch.amax(x, dim=(2, 3), keepdim=True)

    check(Fn(lambda x: F.adaptive_max_pool2d(x, 1) + GlobalMax()(x)))


# --- padding ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("pad,kind,partitions", [
    (nn.ZeroPad2d((1, 2, 0, 3)), "PAD", 1), (nn.ConstantPad2d((1, 2, 0, 3), -0.5), "ADD", 1),
    (nn.ReflectionPad2d((1, 2, 3, 0)), "CONCATENATION", 1), (nn.ReplicationPad2d((2, 1, 0, 3)), "CONCATENATION", 1),
    (nn.ReplicationPad2d(3), "CONCATENATION", 1), (nn.ReflectionPad2d(5), "MIRROR_PAD", None),
], ids=["zero", "constant", "reflect", "edge", "edge3", "reflect_wide"])
def test_padding(pad, kind, partitions):
    assert kind in check(Fn(lambda x, c, p: p(c(x)), conv(), pad), partitions=partitions)


# --- resizing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("resize,shape,kind,partitions", [
    (nn.Upsample(scale_factor=2), (1, 4, 6, 7), "DEPTH_TO_SPACE", 1),
    (lambda x: F.interpolate(x, scale_factor=3, mode="nearest"), (1, 4, 5, 5), "DEPTH_TO_SPACE", 1),
    (lambda x: F.interpolate(x, size=(12, 10), mode="nearest"), (1, 4, 6, 5), "DEPTH_TO_SPACE", 1),
    (lambda x: F.interpolate(x, size=(9, 7), mode="nearest"), (1, 4, 6, 5), "RESIZE_NEAREST_NEIGHBOR", None),
    (lambda x: F.interpolate(x, scale_factor=0.5, mode="nearest"), (1, 4, 8, 8), "RESIZE_NEAREST_NEIGHBOR", None),
    (nn.Upsample(scale_factor=2, mode="bilinear"), (1, 4, 6, 7), "RESIZE_BILINEAR", 1),
    (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (1, 4, 6, 7), "RESIZE_BILINEAR", 1),
    (lambda x: F.interpolate(x, size=(11, 5), mode="bilinear"), (1, 4, 6, 7), "RESIZE_BILINEAR", 1),
    (lambda x: F.interpolate(x, size=(11, 5), mode="bilinear", align_corners=True), (1, 4, 6, 7),
     "RESIZE_BILINEAR", 1),
    (lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"), (1, 4, 6, 8), "RESIZE_BILINEAR", 1),
    (lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear"), (1, 4, 8, 8), "RESIZE_BILINEAR", 1),
], ids=["upsample2", "nearest3", "nearest_size2", "nearest_size", "nearest_half", "bilinear2", "bilinear2_ac",
        "bilinear_size", "bilinear_size_ac", "bilinear1.5", "bilinear_half"])
def test_resize(resize, shape, kind, partitions):
    module = resize if isinstance(resize, nn.Module) else Fn(resize)
    assert kind in check(Fn(lambda x, c, r: r(c(x)), nn.Conv2d(4, 4, 1), module), shape=shape, partitions=partitions)


def test_resize_whose_scale_tflite_cannot_match_is_refused():
    # 5 * 1.5 -> 7 rows: PyTorch samples at i / 1.5, TFLite at i * 5 / 7
    with pytest.raises(ExportError, match=r"Resize .*no TFLite RESIZE_BILINEAR samples like"):
        lower(Fn(lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear")), (1, 4, 5, 5))


_TRANSFORMS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"]
_NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _resize_model(mode: str, transform: str, nearest_mode: str, size):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sizes = numpy_helper.from_array(np.array([1, 3, *size], dtype=np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode=mode,
                            coordinate_transformation_mode=transform, nearest_mode=nearest_mode)
    graph = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, *size])], [sizes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_every_onnx_resize_variant_is_exact_or_refused_with_a_reason():
    """Each ONNX sampling (mode x coordinate transform x nearest rounding x size) either matches ONNX Runtime
    in LiteRT or is refused naming what TFLite cannot sample."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 3, 5, 6)).astype(np.float32)
    lowered = []
    for size in [(10, 12), (7, 9), (3, 4), (15, 18)]:
        for mode, nearest_mode in [*(("nearest", m) for m in _NEAREST_MODES), ("linear", "floor")]:
            for transform in _TRANSFORMS:
                model = _resize_model(mode, transform, nearest_mode, size)
                try:
                    graph, _ = onnx_to_tflite_graph(model)
                except ExportError as exc:
                    assert "no TFLite RESIZE_" in str(exc) and transform in str(exc), str(exc)
                    continue
                expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
                got = run(write_tflite(graph), x.transpose(0, 2, 3, 1).copy(), xnnpack=False).transpose(0, 3, 1, 2)
                np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{mode} {transform} {nearest_mode}")
                lowered.append((mode, transform, nearest_mode, size))
    # PyTorch's own variants are all among them
    for variant in [("nearest", "asymmetric", "floor", (10, 12)), ("nearest", "asymmetric", "floor", (15, 18)),
                    ("linear", "pytorch_half_pixel", "floor", (7, 9)), ("linear", "align_corners", "floor", (7, 9)),
                    ("linear", "half_pixel", "floor", (3, 4)), ("nearest", "asymmetric", "floor", (7, 9))]:
        assert variant in lowered


def _single_node(op: str, in_shape, out_shape, consts=(), **attributes):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(v), f"c{i}") for i, v in enumerate(consts)]
    node = helper.make_node(op, ["x", *(i.name for i in inits)], ["y"], **attributes)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("op,in_shape,out_shape,consts,attributes", [
    ("GlobalMaxPool", (1, 3, 5, 6), (1, 3, 1, 1), (), {}),
    ("Clip", (1, 3, 5, 6), (1, 3, 5, 6), (np.array(-np.inf, np.float32), np.array(0.3, np.float32)), {}),
    ("Pad", (1, 3, 7), (1, 3, 10), (np.array([0, 0, 2, 0, 0, 1]),), {"mode": "reflect"}),
    ("Pad", (1, 3, 7), (2, 3, 9), (np.array([1, 0, 1, 0, 0, 1]), np.array(0.25, np.float32)), {}),
    ("LeakyRelu", (2, 5), (2, 5), (), {}),
])
def test_onnx_nodes_match_onnx_runtime(op, in_shape, out_shape, consts, attributes):
    import onnxruntime as ort

    model = _single_node(op, in_shape, out_shape, consts, **attributes)
    graph, _ = onnx_to_tflite_graph(model)
    x = np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    if len(in_shape) == 4:
        got = run(write_tflite(graph), x.transpose(0, 2, 3, 1).copy()).transpose(0, 3, 1, 2)
    else:
        got = run(write_tflite(graph), x)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("op,in_shape,out_shape,attributes,message", [
    ("Elu", (1, 3, 4, 4), (1, 3, 4, 4), {"alpha": 0.5}, "alpha 1 only"),
    ("MaxPool", (1, 3, 8, 8), (1, 3, 4, 4), {"kernel_shape": [2, 2], "strides": [2, 2], "dilations": [2, 2],
                                             "pads": [1, 1, 1, 1]}, "dilated pooling"),
    ("Resize", (1, 3, 4, 4), (1, 3, 8, 8), {"mode": "cubic"}, "mode=cubic"),
    ("Pad", (1, 3, 4, 4), (1, 3, 6, 6), {"mode": "wrap"}, "mode=wrap"),
])
def test_unsupported_variants_say_why(op, in_shape, out_shape, attributes, message):
    consts = {"Resize": (np.zeros(0, np.float32), np.array([1, 1, 2, 2], np.float32)),
              "Pad": (np.array([0, 0, 1, 1, 0, 0, 1, 1]),)}.get(op, ())
    model = _single_node(op, in_shape, out_shape, consts, **attributes)
    with pytest.raises(ExportError, match=rf"{op} \(node .*{message}"):
        onnx_to_tflite_graph(model)
