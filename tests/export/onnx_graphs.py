"""Small ONNX graphs for the graph-pass tests, exported from PyTorch the way edgekit exports models.

Every graph is ``torch.onnx.export(dynamo=False, opset_version=opset)`` followed by ``onnxsim.simplify``,
built once per test session (``export_graph`` caches by name).
"""

from __future__ import annotations

import functools
import io
import warnings
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

# --- the spellings of channel_shuffle found in the wild -------------------------------------------------


def shuffle_view(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision's spelling."""
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(b, c, h, w)


def shuffle_permute(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(b, c, h, w)


def shuffle_4d(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h * w).transpose(1, 2).reshape(b, c, h, w)


def shuffle_megvii(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Megvii's ShuffleNetV2 reference: shuffle in C/2 groups fused with taking the two halves."""
    b, c, h, w = x.shape
    x = x.reshape(b * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
    return x[0], x[1]


SPELLINGS = {"view": shuffle_view, "permute": shuffle_permute, "4d": shuffle_4d}

# --- Reshape -> Transpose -> Reshape chains that are NOT channel shuffles --------------------------------


def spatial_transpose(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b * c, h, w).transpose(1, 2).reshape(b, c, h, w)


def swap_channel_blocks(x: torch.Tensor) -> torch.Tensor:
    """A channel permutation (swap the middle two quarters) that no shuffle(g) equals."""
    b, c, h, w = x.shape
    return x.reshape(b, 2, 2, c // 4, h, w).permute(0, 2, 1, 3, 4, 5).reshape(b, c, h, w)


def shuffle_and_transpose_hw(x: torch.Tensor) -> torch.Tensor:
    """A shuffle that also swaps height and width (h == w) in the same Transpose: same shapes in and out,
    a permutation of elements, but not of channels alone."""
    b, c, h, w = x.shape
    return x.reshape(b, 2, c // 2, h, w).permute(0, 2, 1, 4, 3).reshape(b, c, h, w)


def pixel_shuffle_like(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, h * 2, w * 2)


# --- modules ----------------------------------------------------------------------------------------------


class ShuffleBlock(nn.Module):
    """ShuffleNetV2's stride-1 block in miniature: chunk, transform one half, cat, shuffle; then, if
    ``after`` says so, the next block's chunk ("chunk"), an uneven torch.split ("split"), a chunk plus a
    second reader of the shuffled tensor ("two_readers") or nothing ("none")."""

    def __init__(
        self, channels: int, groups: int = 2, spelling: str = "view", after: str = "chunk", parts: int = 0
    ) -> None:
        super().__init__()
        self.groups, self.after, self.parts = groups, after, parts or groups
        self.shuffle = SPELLINGS[spelling]
        part = channels // self.parts
        self.branches = nn.ModuleList(nn.Conv2d(part, part, 1) for _ in range(self.parts - 1))

    def forward(self, x: torch.Tensor):
        parts = list(x.chunk(self.parts, 1))
        parts[1:] = [branch(p) for branch, p in zip(self.branches, parts[1:], strict=True)]
        out = self.shuffle(torch.cat(parts, 1), self.groups)
        c = out.shape[1]
        if self.after == "chunk":
            a, b = out.chunk(2, 1)
            return a + 1, b * 2
        if self.after == "split":
            a, b = out.split([self.groups, c - self.groups], 1)
            return a + 1, b * 2
        if self.after == "two_readers":
            a, b = out.chunk(2, 1)
            return a + 1, b * 2, out.sum(1, keepdim=True)
        return out * 1.5


class MegviiBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels // 2, channels // 2, 1)

    def forward(self, x: torch.Tensor):
        a, b = shuffle_megvii(x)
        return a + 1, self.conv(b)


class Wrap(nn.Module):
    """Applies ``fn`` between two cheap ops, so the chain under test is not the graph's first or last."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor):
        return self.fn(x * 2.0) + 1.0


def _shufflenet_block(c: int) -> nn.Module:
    half = c // 2

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branch2 = nn.Sequential(
                nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
                nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False), nn.BatchNorm2d(half),
                nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x1, x2 = x.chunk(2, dim=1)
            return shuffle_view(torch.cat((x1, self.branch2(x2)), dim=1), 2)

    return Block()


class ShuffleNetStack(nn.Module):
    """``blocks`` ShuffleNetV2 stride-1 blocks (torchvision's code) with random BatchNorm statistics."""

    def __init__(self, channels: int = 116, blocks: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.blocks = nn.Sequential(*[_shufflenet_block(channels) for _ in range(blocks)])
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


# --- the graphs -------------------------------------------------------------------------------------------


def _graph_builders():
    builders = {}
    for spelling in SPELLINGS:
        for groups in (2, 4):
            for after in ("chunk", "none", "two_readers"):
                builders[f"{spelling}_g{groups}_{after}"] = (
                    lambda s=spelling, g=groups, a=after: ShuffleBlock(16, g, s, a), (1, 16, 5, 6))
    builders["view_g4_split"] = (lambda: ShuffleBlock(16, 4, "view", "split"), (1, 16, 5, 6))
    # 12 channels in 4 groups chunked in halves: pieces of 6 are not whole groups, so no split fusion.
    builders["view_g4_chunk_uneven"] = (lambda: ShuffleBlock(12, 4, "view", "chunk"), (1, 12, 3, 4))
    # A Concat of 2 halves shuffled in 4 groups: not one Concat input per group, so no concat folding.
    builders["view_g4_cat2_chunk"] = (lambda: ShuffleBlock(16, 4, "view", "chunk", parts=2), (1, 16, 5, 6))
    builders["batch2_view_g2_chunk"] = (lambda: ShuffleBlock(8, 2, "view", "chunk"), (2, 8, 3, 3))
    builders["megvii"] = (lambda: MegviiBlock(16), (1, 16, 5, 6))
    builders["megvii_batch2"] = (lambda: MegviiBlock(8), (2, 8, 3, 4))
    builders["spatial_transpose"] = (lambda: Wrap(spatial_transpose), (1, 8, 5, 5))
    builders["swap_channel_blocks"] = (lambda: Wrap(swap_channel_blocks), (1, 16, 3, 4))
    builders["shuffle_and_transpose_hw"] = (lambda: Wrap(shuffle_and_transpose_hw), (1, 8, 4, 4))
    builders["pixel_shuffle_like"] = (lambda: Wrap(pixel_shuffle_like), (1, 8, 3, 4))
    builders["stack_116x28_3"] = (lambda: ShuffleNetStack(116, 3), (1, 116, 28, 28))
    builders["stack_116x28_16"] = (lambda: ShuffleNetStack(116, 16), (1, 116, 28, 28))
    builders["stack_small_2"] = (lambda: ShuffleNetStack(8, 2), (1, 8, 4, 4))
    return builders


GRAPHS = _graph_builders()
SHUFFLE_GRAPHS = sorted(
    name for name in GRAPHS if name.startswith(("view", "permute", "4d", "batch2", "megvii"))
)
NON_SHUFFLE_GRAPHS = [
    "spatial_transpose", "swap_channel_blocks", "shuffle_and_transpose_hw", "pixel_shuffle_like"
]


def export_onnx(module: nn.Module, input_shape: tuple[int, ...], opset: int = 17) -> onnx.ModelProto:
    """Export as edgekit does: TorchScript exporter, opset 17, then onnxsim."""
    import onnxsim

    module = module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(input_shape),), buffer, dynamo=False, opset_version=opset)
    simplified, ok = onnxsim.simplify(onnx.load_from_string(buffer.getvalue()))
    assert ok
    return simplified


@functools.cache
def _graph_bytes(name: str) -> bytes:
    torch.manual_seed(0)
    factory, shape = GRAPHS[name]
    return export_onnx(factory(), shape).SerializeToString()


def export_graph(name: str) -> onnx.ModelProto:
    """A fresh copy of the named test graph (cached, so each is exported once per session)."""
    return onnx.load_from_string(_graph_bytes(name))


def input_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims)


def run(model: onnx.ModelProto, x: np.ndarray, optimize: bool = False) -> list[np.ndarray]:
    """Outputs of ``model`` on ``x`` with onnxruntime, one thread, graph optimisations off unless asked
    (so the graph run is the graph the pass produced)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def random_inputs(model: onnx.ModelProto, seeds=(0, 1, 2)) -> list[np.ndarray]:
    shape = input_shape(model)
    return [np.random.default_rng(seed).standard_normal(shape).astype(np.float32) for seed in seeds]


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def readers_of_op(model: onnx.ModelProto, producer_op: str) -> Counter:
    """How many nodes of each type read an output of a ``producer_op`` node."""
    produced = {o for n in model.graph.node if n.op_type == producer_op for o in n.output}
    return Counter(n.op_type for n in model.graph.node if any(i in produced for i in n.input))


# --- assertions every pass test makes -------------------------------------------------------------------


def assert_same_outputs(before: onnx.ModelProto, after: onnx.ModelProto, seeds=(0, 1, 2)) -> None:
    """Both graphs give bit-identical outputs on random inputs (the passes only move data)."""
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    for x in random_inputs(before, seeds):
        expected, got = run(before, x), run(after, x)
        assert len(got) == len(expected)
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_array_equal(g, e)


def assert_valid(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)


def assert_idempotent(run_pass, model: onnx.ModelProto) -> None:
    """A second run of ``run_pass`` on its own output finds nothing to do and returns the same bytes."""
    once = run_pass(model).model
    twice = run_pass(once)
    assert twice.changed == 0 and twice.details == []
    assert twice.model.SerializeToString() == once.SerializeToString()


def assert_deterministic(run_pass, model: onnx.ModelProto) -> None:
    """The pass gives the same bytes each time and leaves its input alone."""
    before = model.SerializeToString()
    first = run_pass(model).model.SerializeToString()
    assert run_pass(onnx.load_from_string(before)).model.SerializeToString() == first
    assert model.SerializeToString() == before
