"""The TFLite lowering's layouts and tensor/attention ops, end to end: plain PyTorch modules through edgekit's
ONNX path, lowered, written, and run in the real LiteRT interpreter (XNNPACK) against PyTorch."""

import io

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgekit.errors import ExportError
from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.passes import apply_shuffle_passes
from edgekit.export.tflite.from_onnx import onnx_to_tflite_graph, unsupported_ops
from edgekit.export.tflite.inspect import xnnpack_partitions
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.litert_runtime import load_interpreter_module


def to_onnx(module: nn.Module, *shapes):
    if len(shapes) == 1:
        model = torch_to_onnx(module.eval(), shapes[0])
    else:  # the exporter takes one input; several go through torch.onnx as edgekit calls it
        buffer = io.BytesIO()
        torch.onnx.export(module.eval(), tuple(torch.zeros(s) for s in shapes), buffer, dynamo=False, opset_version=17,
                          input_names=[f"input_{i}" for i in range(len(shapes))])
        model = onnx.load_from_string(buffer.getvalue())
    return apply_shuffle_passes(simplify(model), "reshape")[0]


def as_file_layout(value: np.ndarray) -> np.ndarray:
    """A TFLite file's 4-D tensors are NHWC; others keep PyTorch's layout."""
    return value.transpose(0, 2, 3, 1) if value.ndim == 4 else value


def lower_and_run(module: nn.Module, *shapes, seed: int = 0):
    """Returns (layout transposes, XNNPACK partitions, graph, largest error relative to each output's scale)."""
    torch.manual_seed(seed)
    graph, transposes = onnx_to_tflite_graph(to_onnx(module, *shapes))
    content = write_tflite(graph)
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    interpreter = load_interpreter_module()[0](model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(as_file_layout(x)))
    interpreter.invoke()
    got = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    with torch.no_grad():
        expected = module(*(torch.from_numpy(x) for x in inputs))
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    errors = []
    for g, e in zip(got, expected, strict=True):
        e = as_file_layout(e.numpy())
        assert g.shape == e.shape
        errors.append(float(np.abs(g - e).max() / max(1.0, np.abs(e).max())))
    return transposes, xnnpack_partitions(content), graph, max(errors)


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of an NCHW map (one fused qkv Linear, timm's spelling)."""

    def __init__(self, c=32, heads=4):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.norm(x.flatten(2).transpose(1, 2))
        q, k, v = self.qkv(t).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        o = self.proj((a @ v).transpose(1, 2).reshape(b, h * w, c))
        return o.transpose(1, 2).reshape(b, c, h, w) + x


def test_attention_block_runs_in_one_partition_with_the_fewest_transposes():
    transposes, partitions, graph, error = lower_and_run(Attention(), (1, 32, 6, 6))
    assert error < 1e-5 and partitions == 1
    # Tokens (B, HW, C) come from the NHWC map by a RESHAPE and go back the same way: no transpose. The qkv
    # Linear gives (B, N, 3, h, d) while the BATCH_MATMULs want (B, h, N, d) (k transposed through adj_y):
    # one TRANSPOSE of the qkv tensor before it is split, not one per piece. Merging the heads of (B, h, N, d)
    # into (B, N, C) moves the head axis across N: one more. Both move data; no layout choice avoids them.
    assert transposes == 2 and graph.histogram()["TRANSPOSE"] == 2
    assert graph.histogram()["BATCH_MATMUL"] == 2 and graph.histogram()["SOFTMAX"] == 1


class LayerNormTokens(nn.Module):
    def __init__(self, c=24):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.fc = nn.Linear(c, 2 * c)

    def forward(self, t):
        return torch.relu(self.fc(self.norm(t)))


def test_layernorm_over_the_last_axis_and_linear_on_3d_tokens():
    transposes, partitions, graph, error = lower_and_run(LayerNormTokens(), (2, 10, 24))
    assert error < 1e-5 and transposes == 0 and partitions == 1
    # onnxsim spells the Linear Reshape -> Gemm -> Reshape: RESHAPEs in the token layout, no transpose
    assert graph.histogram()["FULLY_CONNECTED"] == 1 and graph.histogram()["RSQRT"] == 1


class ChannelsLastNorm(nn.Module):
    """ConvNeXt's LayerNorm over channels: permute to NHWC, LayerNorm, permute back."""

    def __init__(self, c=16):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.norm = nn.LayerNorm(c)

    def forward(self, x):
        return self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ChannelsFirstNorm(nn.Module):
    """ConvNeXt's channels-first LayerNorm as PyTorch code spells it: mean, (x - u)^2, sqrt, divide."""

    def __init__(self, c=16, eps=1e-6):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.weight = nn.Parameter(torch.rand(c) + 0.5)
        self.bias = nn.Parameter(torch.randn(c))
        self.eps = eps

    def forward(self, x):
        x = self.conv(x)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


@pytest.mark.parametrize("module", [ChannelsLastNorm, ChannelsFirstNorm])
def test_layernorm_over_channels_of_an_nhwc_map_needs_no_transpose(module):
    transposes, partitions, graph, error = lower_and_run(module(), (1, 3, 8, 8))
    assert error < 1e-5 and transposes == 0 and partitions == 1
    means = [op for op in graph.ops if op.kind == "MEAN"]
    assert len(means) == 2 and all(graph.tensors[op.inputs[1]].data.tolist() == [3] for op in means)


class Selections(nn.Module):
    def forward(self, x):
        token = x[:, 0]  # Gather of a scalar on the channel axis
        rows = x[:, :, 1]  # on H
        picked = x[:, [0, 2, 3, 5]]  # 1-D indices, irregular: SLICEs of the runs, concatenated
        strided = x[:, 1::2, ::2, 1:6:3]  # Slice with steps over three axes
        return token, rows, picked, strided


def test_gather_and_strided_slices_in_the_nhwc_layout():
    transposes, partitions, graph, error = lower_and_run(Selections(), (1, 6, 5, 7))
    # x[:, :, 1] of an NHWC map is (B, W, C) in the IR: only handing (B, C, W) out costs a TRANSPOSE
    assert error == 0.0 and transposes == 1 and partitions == 1
    kinds = graph.histogram()
    # steps as SLICE + RESHAPE (+ PAD where the last step runs past the end): XNNPACK runs no STRIDED_SLICE
    assert "STRIDED_SLICE" not in kinds and "GATHER" not in kinds and kinds["PAD"] == 1


class OddConcats(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        tall = torch.cat([x, y], dim=2)
        wide = torch.cat([x, y, x], dim=3)
        tokens = torch.cat([x.flatten(2), y.flatten(2)], dim=2)  # (B, C, 2HW), a 3-D concat on the last axis
        return tall, wide, tokens


def test_concat_on_any_axis_and_multiple_outputs():
    transposes, partitions, graph, error = lower_and_run(OddConcats(), (1, 4, 3, 5))
    assert error < 1e-6 and partitions == 1
    # the 3-D output (B, C, 2HW) is (B, 2HW, C) in the IR: the one TRANSPOSE gives the caller PyTorch's layout
    assert transposes == 1


class Broadcasts(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)
        self.register_buffer("plane", torch.randn(5, 6))
        self.register_buffer("scale", torch.rand(8, 1, 1) + 0.5)

    def forward(self, x):
        y = self.conv(x)
        gate = y.mean(1, keepdim=True)  # (B, 1, H, W) spatial gate
        pooled = y.amax(dim=(2, 3))  # (B, C), keepdims off
        z = x * torch.sigmoid(gate) + self.plane - pooled[:, :, None, None] / self.scale
        z = torch.maximum(z, y) - torch.minimum(x, 0.5 * y) / (y.abs() + 1.0)
        z = z + y.pow(3) * 0.01 - (x.abs() + 1.0).pow(-1) + (y.abs() + 0.5).pow(1.5)
        return z, pooled.sum(1)


def test_broadcasting_binary_ops_and_reductions():
    transposes, partitions, graph, error = lower_and_run(Broadcasts(), (2, 8, 5, 6))
    assert error < 1e-5 and transposes == 0
    kinds = graph.histogram()
    assert kinds["REDUCE_MAX"] == 1 and kinds["SUM"] == 1 and kinds["DIV"] == 2 and kinds["POW"] == 1


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(7, 4)

    def forward(self, image, features):
        return self.conv(image) + self.fc(features)[:, :, None, None]


def test_two_inputs_of_different_ranks():
    transposes, partitions, graph, error = lower_and_run(TwoInputs(), (1, 3, 6, 6), (1, 7))
    assert error < 1e-5 and transposes == 0 and partitions == 1 and len(graph.inputs) == 2


class ChannelSoftmax(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.softmax(self.dim)


@pytest.mark.parametrize("dim,transposes", [(1, 0), (3, 2)])
def test_softmax_on_any_axis(dim, transposes):
    # over channels the NHWC layout already has the axis last; over W it costs one TRANSPOSE in and, since a
    # 4-D output is NHWC, one out
    count, partitions, _, error = lower_and_run(ChannelSoftmax(dim), (1, 5, 4, 6))
    assert error < 1e-6 and count == transposes and partitions == 1


def gemm_model(alpha, beta, trans_a, trans_b, c_shape, constant_b=True):
    rng = np.random.default_rng(0)
    a_shape, b_shape = ((6, 3) if trans_a else (3, 6)), ((4, 6) if trans_b else (6, 4))
    inits = [onnx.numpy_helper.from_array(rng.standard_normal(c_shape).astype(np.float32), "C")]
    inputs = [onnx.helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, a_shape)]
    if constant_b:
        inits.append(onnx.numpy_helper.from_array(rng.standard_normal(b_shape).astype(np.float32), "B"))
    else:
        inputs.append(onnx.helper.make_tensor_value_info("B", onnx.TensorProto.FLOAT, b_shape))
    node = onnx.helper.make_node("Gemm", ["A", "B", "C"], ["Y"], alpha=alpha, beta=beta, transA=trans_a,
                                 transB=trans_b, name="gemm")
    graph = onnx.helper.make_graph([node], "g", inputs, [onnx.helper.make_tensor_value_info(
        "Y", onnx.TensorProto.FLOAT, (3, 4))], inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize("alpha,beta,trans_a,trans_b,c_shape,constant_b", [
    (1.0, 1.0, 0, 1, (4,), True), (0.5, 2.0, 1, 0, (1, 4), True), (1.5, 0.25, 0, 0, (3, 4), True),
    (2.0, 1.0, 1, 1, (4,), False)])
def test_gemm_every_attribute(alpha, beta, trans_a, trans_b, c_shape, constant_b):
    import onnxruntime

    model = gemm_model(alpha, beta, trans_a, trans_b, c_shape, constant_b)
    graph, _ = onnx_to_tflite_graph(model)
    rng = np.random.default_rng(1)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in model.graph.input}
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    interpreter = load_interpreter_module()[0](model_content=write_tflite(graph), num_threads=1)
    interpreter.allocate_tensors()
    for detail, name in zip(interpreter.get_input_details(), feeds, strict=True):
        interpreter.set_tensor(detail["index"], feeds[name])
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


class Unsupported(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 1) + torch.cumsum(x, 2) + torch.atan(x)


def test_every_unsupported_node_is_reported_at_once():
    model = to_onnx(Unsupported(), (1, 3, 4, 4))
    assert sorted(line.split(" (")[0] for line in unsupported_ops(model)) == ["Atan", "CumSum", "CumSum"]
    with pytest.raises(ExportError) as info:
        onnx_to_tflite_graph(model)
    lines = str(info.value).splitlines()
    assert "3 ONNX nodes" in lines[0] and "--format onnx still works" in lines[0]
    assert lines[1].startswith("  CumSum x2: ") and lines[2].startswith("  Atan x1: ")


class ResidualCnn(nn.Module):
    """A ResNet basic block and a MobileNetV2 inverted residual, then global pooling and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.basic = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 1, 1))
        self.inverted = nn.Sequential(nn.Conv2d(16, 64, 1), nn.ReLU6(), nn.Conv2d(64, 64, 3, 1, 1, groups=64),
                                      nn.ReLU6(), nn.Conv2d(64, 16, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.basic(x))
        x = x + self.inverted(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_pure_cnn_has_no_layout_transpose():
    transposes, partitions, graph, error = lower_and_run(ResidualCnn(), (1, 3, 16, 16))
    assert error < 1e-5 and transposes == 0 and partitions == 1 and "TRANSPOSE" not in graph.histogram()


class MobileViTBlock(nn.Module):
    """MobileViT's block: local 3x3 + 1x1 convs, unfold into 2x2 patches, a transformer layer over the
    patches, fold back, 1x1 projection, concatenation with the input and a 3x3 fusion conv."""

    def __init__(self, c=16, d=24, heads=2, patch=2):
        super().__init__()
        self.patch, self.heads = patch, heads
        self.local = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, d, 1))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.proj = nn.Conv2d(d, c, 1)
        self.fuse = nn.Conv2d(2 * c, c, 3, padding=1)

    def forward(self, x):
        b, _, h, w = x.shape
        p = self.patch
        y = self.local(x)
        d = y.shape[1]
        # unfold: (B, d, H, W) -> (B * p * p, N, d), N = H * W / p^2
        t = y.reshape(b, d, h // p, p, w // p, p).permute(0, 3, 5, 2, 4, 1).reshape(b * p * p, -1, d)
        q, k, v = self.qkv(self.norm1(t)).reshape(b * p * p, -1, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1)
        t = t + self.out((a @ v).transpose(1, 2).reshape(b * p * p, -1, d))
        t = t + self.mlp(self.norm2(t))
        y = t.reshape(b, p, p, h // p, w // p, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, h, w)
        return self.fuse(torch.cat([x, self.proj(y)], 1))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: depthwise 7x7, LayerNorm over channels in NHWC, Linear 4x, GELU, Linear, layer scale,
    residual."""

    def __init__(self, c=16):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pw1, self.pw2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.act = nn.GELU()
        self.gamma = nn.Parameter(torch.rand(c))

    def forward(self, x):
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.gamma * self.pw2(self.act(self.pw1(y)))
        return x + y.permute(0, 3, 1, 2)


def test_convnext_block_is_native_nhwc():
    transposes, partitions, graph, error = lower_and_run(ConvNeXtBlock(), (1, 16, 14, 14))
    assert error < 1e-5 and transposes == 0 and partitions == 1
    assert graph.histogram()["FULLY_CONNECTED"] == 2


def test_mobilevit_block_end_to_end():
    transposes, partitions, graph, error = lower_and_run(MobileViTBlock(), (1, 16, 8, 8))
    assert error < 1e-5 and partitions == 1
    # unfolding into patches and folding back each move data (one TRANSPOSE each), and the attention inside
    # needs its two (see the attention block above)
    assert transposes == 4


class SharedConvOutput(nn.Module):
    """A conv's output read twice, once through a free transpose and a ReLU: the ReLU must not be fused into
    the conv whose output the other reader sees."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.conv1(x)
        return torch.relu(y.permute(0, 2, 3, 1)), self.conv2(y)


def test_activation_is_not_fused_into_a_tensor_another_reader_sees():
    transposes, partitions, graph, error = lower_and_run(SharedConvOutput(), (1, 3, 4, 5))
    assert error < 1e-6 and "RELU" in graph.histogram()
    assert transposes == 1  # the first output, (B, H, W, C) in PyTorch, is handed out "NHWC" like any 4-D one


class Reshapes(nn.Module):
    def forward(self, x):
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C): the NHWC map itself, a RESHAPE
        rows = x.reshape(x.shape[0], -1, x.shape[3])  # (B, C*H, W): C and H are apart in NHWC
        spread = x.mean((2, 3), keepdim=True).expand(-1, -1, x.shape[2], x.shape[3])
        return tokens, rows, spread


def test_reshapes_through_the_layout_and_expand():
    transposes, _, graph, error = lower_and_run(Reshapes(), (1, 6, 4, 5))
    # only (B, C*H, W) needs the channels next to H: one TRANSPOSE to NCHW before its RESHAPE
    assert error < 1e-6 and transposes == 1 and graph.histogram()["BROADCAST_TO"] == 1


class PatchUnfoldFold(nn.Module):
    """MobileViT's unfold into 2x2 patches and fold back as ml-cvnets spells them (all 4-D: reshape,
    transpose, reshape, transpose, reshape), around a Linear over the patch tokens."""

    def __init__(self, c=8, p=2):
        super().__init__()
        self.p = p
        self.conv_in, self.conv_out = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, c, 1)
        self.fc = nn.Linear(c, c)

    def forward(self, x):
        x = self.conv_in(x)
        b, c, h, w = x.shape
        p, nh, nw = self.p, h // self.p, w // self.p
        t = x.reshape(b * c * nh, p, nw, p).transpose(1, 2).reshape(b, c, nh * nw, p * p).transpose(1, 3)
        t = self.fc(t.reshape(b * p * p, nh * nw, c))
        y = t.reshape(b, p * p, nh * nw, c).transpose(1, 3).reshape(b * c * nh, nw, p, p).transpose(1, 2)
        return self.conv_out(y.reshape(b, c, h, w))


def test_collapse_reshape_chains_is_exact_idempotent_and_deterministic():
    import onnxruntime

    from edgekit.export.tflite.collapse_reshape_chains import collapse_reshape_chains

    model = to_onnx(PatchUnfoldFold(), (1, 3, 8, 12))
    first = collapse_reshape_chains(model)
    assert first.changed == 2  # the unfold and the fold
    again = collapse_reshape_chains(first.model)
    assert again.changed == 0
    assert collapse_reshape_chains(model).model.SerializeToString() == first.model.SerializeToString()
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 12)).astype(np.float32)
    before, after = (onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"input": x})[0]
                     for m in (model, first.model))
    np.testing.assert_array_equal(before, after)


def test_patch_unfold_and_fold_move_data_once_each():
    transposes, partitions, _, error = lower_and_run(PatchUnfoldFold(), (1, 3, 8, 12))
    assert error < 1e-5 and partitions == 1 and transposes == 2


class ChunkedAttention(nn.Module):
    """Attention that chunks q, k and v off the qkv Linear before cutting each into heads (MobileViT's spelling
    in edgekit's registry)."""

    def __init__(self, c=32, heads=4):
        super().__init__()
        self.heads, self.scale = heads, (c // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)

    def forward(self, t):
        b, n, c = t.shape
        q, k, v = (p.reshape(b, n, self.heads, c // self.heads).transpose(1, 2) for p in self.qkv(t).chunk(3, -1))
        a = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))


def test_reshape_before_split_is_exact_and_saves_two_transposes():
    import onnxruntime

    from edgekit.export.tflite.reshape_before_split import reshape_before_split

    model = to_onnx(ChunkedAttention(), (2, 9, 32))
    result = reshape_before_split(model)
    assert result.changed == 1 and reshape_before_split(result.model).changed == 0
    x = np.random.default_rng(0).standard_normal((2, 9, 32)).astype(np.float32)
    before, after = (onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"input": x})[0]
                     for m in (model, result.model))
    np.testing.assert_array_equal(before, after)
    # as for the fused-qkv attention block: one TRANSPOSE of the whole qkv tensor, one to merge the heads
    transposes, partitions, _, error = lower_and_run(ChunkedAttention(), (2, 9, 32))
    assert error < 1e-5 and partitions == 1 and transposes == 2


def test_shape_arithmetic_onnxsim_left_is_folded():
    import onnxruntime

    h = onnx.helper
    nodes = [
        h.make_node("Shape", ["x"], ["shape"], name="shape"),
        h.make_node("Constant", [], ["head"], name="head", value_ints=[2]),
        h.make_node("Slice", ["shape", "head_start", "head"], ["batch_channels"], name="slice"),
        h.make_node("Constant", [], ["rest"], name="rest", value_ints=[-1]),
        h.make_node("Concat", ["batch_channels", "rest"], ["target"], axis=0, name="concat"),
        h.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
        h.make_node("Softmax", ["y"], ["z"], axis=-1, name="softmax"),
    ]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, 4, 3, 3))],
                         [h.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)],
                         [onnx.numpy_helper.from_array(np.array([0], np.int64), "head_start")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    lowered, transposes = onnx_to_tflite_graph(model)
    assert {op.kind for op in lowered.ops} == {"RESHAPE", "TRANSPOSE", "SOFTMAX"}
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 3)).astype(np.float32)
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    interpreter = load_interpreter_module()[0](model_content=write_tflite(lowered), num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.transpose(0, 2, 3, 1).copy())
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), expected,
                               atol=1e-6)
    assert transposes == 1  # (1, C, H*W) from an NHWC map: channels must come before the pixels


class Steps(nn.Module):
    def forward(self, x):
        return (x[:, :, 1::2, ::3], x[..., -6:-1:2], x[:, 1:, :, 2::4], x.flip(1), torch.flip(x[:, :, ::2], (3,)))


def test_slices_with_steps_are_exact():
    transposes, partitions, graph, error = lower_and_run(Steps(), (1, 3, 6, 7))
    assert error == 0.0 and transposes == 0
    # the flips (negative steps) are the only STRIDED_SLICEs
    assert graph.histogram()["STRIDED_SLICE"] == 2


def test_reshape_layout_rules():
    from edgekit.export.tflite.collapse_reshape_chains import atom_chain
    from edgekit.export.tflite.lowering_utils import NHWC, reshaped_perm

    # NCHW (B, C, H, W) -> (B, C, H*W) on an NHWC tensor: the IR reshape to (B, H*W, C), layout (0, 2, 1)
    assert reshaped_perm((2, 8, 4, 5), (2, 8, 20), NHWC) == (0, 2, 1)
    assert reshaped_perm((2, 8, 4, 5), (2, 32, 5), NHWC) is None  # C and H are not neighbours in NHWC
    assert reshaped_perm((1, 8, 1, 1), (1, 8), NHWC) == (0, 1)  # a classifier's flatten
    # (6, 4) -> reshape (2, 3, 4) -> transpose (2, 0, 1) -> reshape (8, 3): atoms 2, 3, 4 moved to 4, 2, 3
    assert atom_chain((6, 4), [("reshape", (2, 3, 4)), ("transpose", (2, 0, 1)), ("reshape", (8, 3))]) == (
        [2, 3, 4], [2, 0, 1])
    assert atom_chain((6, 5), [("reshape", (5, 6))]) is None  # a reshape that is not a regrouping


def test_outputs_keep_their_onnx_names_through_a_flatten():
    # Apps look outputs up by name: a flattened pooled output is still called what the ONNX graph calls it.
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 1)

        def forward(self, x):
            return torch.flatten(nn.functional.adaptive_avg_pool2d(self.conv(x), 1), 1)

    model = to_onnx(Head().eval(), (1, 3, 8, 8))
    onnx_output = model.graph.output[0].name
    graph, _ = onnx_to_tflite_graph(model)
    assert graph.outputs == [onnx_output.strip("/").replace("/", ".")]
