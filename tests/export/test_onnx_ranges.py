"""TFLite int8 ranges computed on the ONNX graph: every activation of the lowered graph names where its values
are in the ONNX graph (``ir.Origin``), and the range computed there equals the one observed on the lowered
graph itself in LiteRT, for folded channel shuffles (channel subsets), fused activations, a scale folded into
the next convolution, LayerNorm's inner values and a folded input normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.export import ptq_steps
from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.passes import apply_shuffle_passes
from edgekit.export.tflite.calibrate import calibrate_ranges, layer_norm_step, onnx_ranges
from edgekit.export.tflite.ir import Origin
from edgekit.export.tflite.pixel_input import to_pixels
from edgekit.export.tflite_export import lower_to_tflite
from edgekit.models import create

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Gated(nn.Module):
    """A stem, a hard-sigmoid squeeze-excite gate (its ADD joins a bias, its 1/6 the next convolution), a
    ConvNeXt-style LayerNorm over channels and a transformer-style LayerNorm over tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.squeeze = nn.Conv2d(16, 4, 1)
        self.excite = nn.Conv2d(4, 16, 1)
        self.project = nn.Conv2d(16, 16, 1)
        self.norm = nn.LayerNorm(16)
        self.tokens = nn.LayerNorm(16)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.tokens.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = self.stem(x)
        gate = nn.functional.hardsigmoid(self.excite(torch.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        x = self.project(x * gate)
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.tokens(x.flatten(2).transpose(1, 2))


def _prepared(module: nn.Module, shape):
    torch.manual_seed(0)
    model = simplify(torch_to_onnx(module.eval(), shape))
    model = apply_shuffle_passes(model, "reshape")[0]  # canonical shuffles, as the TFLite exporter asks
    return ptq_steps.prepare_model(model, None, mean=MEAN, std=STD, equalize=False, fold_normalization=True,
                                   reference=True).model


def _images(count: int, size: int) -> np.ndarray:
    return np.random.default_rng(1).normal(0.0, 1.0, (count, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module", params=["shufflenet_v2_x0_5", "gated"])
def lowered(request):
    torch.manual_seed(0)
    module, size = (create("shufflenet_v2_x0_5"), 64) if request.param != "gated" else (Gated(), 32)
    model = _prepared(module, (1, 3, size, size))
    graph, used, _, _ = lower_to_tflite(model, "auto")
    x = _images(6, size)
    return request.param, graph, model, x, to_pixels(x, MEAN, STD, channel_axis=3), used


def test_every_activation_has_an_origin_and_its_onnx_range_is_the_lowered_graph_range(lowered):
    name, graph, model, x, pixels, used = lowered
    observed = calibrate_ranges(graph, pixels, method="minmax")
    computed = onnx_ranges(graph, model, x.transpose(0, 3, 1, 2), pixels, method="minmax")
    assert computed.on_tflite == 0
    assert computed.on_onnx + computed.shared == len(observed)
    origins = {n: graph.tensors[n].origin for n in observed if graph.tensors[n].origin is not None}
    assert len(origins) == computed.on_onnx
    for tensor, origin in origins.items():
        if tensor in graph.inputs:  # the pixels; the ONNX tensor also holds the mean-pixel border
            continue
        lo, hi = observed[tensor]
        width = max(hi - lo, 1e-6)
        assert abs(computed.ranges[tensor][0] - lo) < 1e-4 * width, (tensor, origin)
        assert abs(computed.ranges[tensor][1] - hi) < 1e-4 * width, (tensor, origin)
    kinds = {"channels": any(o.channels for o in origins.values()),
             "scale": any(o.scale != 1.0 for o in origins.values()),
             "derived": any(o.derived for o in origins.values())}
    if name == "shufflenet_v2_x0_5":
        assert used == "folded" and kinds["channels"]  # the fate-group convolutions hold channel subsets
    else:
        assert kinds["scale"] and kinds["derived"]  # the gated product without 1/6; LayerNorm's inner values


def test_the_note_says_where_ranges_were_computed(lowered):
    _, graph, model, x, pixels, _ = lowered
    computed = onnx_ranges(graph, model, x.transpose(0, 3, 1, 2), pixels, method="percentile")
    assert computed.note().startswith(f"ranges of {computed.on_onnx} tensors computed on the ONNX graph")
    assert "lowered graph" not in computed.note()


def test_an_origin_restricted_twice_names_the_channels_of_the_first():
    origin = Origin("t", scale=2.0).restricted([4, 5, 6, 7]).restricted([1, 3])
    assert origin == Origin("t", (5, 7), 2.0)
    assert origin.scaled(0.5).scale == 1.0


def test_layer_norm_steps_match_torch():
    x = np.random.default_rng(0).normal(2.0, 3.0, (2, 5, 7)).astype(np.float32)
    gamma = np.linspace(0.5, 1.5, 7).astype(np.float32)
    norm = nn.LayerNorm(7, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(gamma))
        expected = norm(torch.from_numpy(x)).numpy() - norm.bias.detach().numpy()
    np.testing.assert_allclose(layer_norm_step(x, "scaled", 2, 1e-5, gamma), expected, atol=1e-5)
    np.testing.assert_allclose(layer_norm_step(x, "var", 2, 1e-5, None), x.var(axis=2, keepdims=True), rtol=1e-5)


def test_mse_ranges_on_the_onnx_graph_lie_inside_the_extremes(lowered):
    # mse takes a second pass over the same views; its ranges clip, never widen, the observed extremes (with
    # zero, which every int8 range holds)
    _, graph, model, x, pixels, _ = lowered
    images = x.transpose(0, 3, 1, 2)
    extremes = onnx_ranges(graph, model, images, pixels, method="minmax").ranges
    clipped = onnx_ranges(graph, model, images, pixels, method="mse").ranges
    assert clipped.keys() == extremes.keys()
    for name, (lo, hi) in clipped.items():
        low, high = min(extremes[name][0], 0.0), max(extremes[name][1], 0.0)
        assert low - 1e-6 * (high - low) <= lo <= hi <= high + 1e-6 * (high - low), name
    assert any(clipped[n] != extremes[n] for n in clipped)


def test_ranges_gathered_in_the_gptq_pass_are_the_ones_computed_alone(lowered):
    # the same ONNX graph, the same images: GPTQ's pass (ONNX Runtime at its full optimization) gives the ranges
    # a pass of their own gives
    from edgekit.export.optimal_rounding import round_weights_optimally
    from edgekit.export.tflite.calibrate import range_pass

    name, graph, model, x, pixels, _ = lowered
    images = x.transpose(0, 3, 1, 2)
    gathered = range_pass(graph, model, len(images), method="minmax")
    if name == "gated":  # its LayerNorms read tensors the lowering's ONNX rewrites made: a pass of their own
        assert gathered is None
        return
    assert gathered is not None and gathered.seen == 0
    round_weights_optimally(model, images, ranges=gathered)
    together = onnx_ranges(graph, model, images, pixels, method="minmax", gathered=gathered)
    alone = onnx_ranges(graph, model, images, pixels, method="minmax")
    assert together.in_gptq_pass and not alone.in_gptq_pass
    assert together.ranges.keys() == alone.ranges.keys()
    for tensor, (lo, hi) in alone.ranges.items():
        width = max(hi - lo, 1e-6)
        assert abs(together.ranges[tensor][0] - lo) <= 1e-4 * width and abs(together.ranges[tensor][1] - hi) <= \
            1e-4 * width, tensor
    assert "in GPTQ's pass" in together.note()
    assert range_pass(graph, model, len(images), method="mse") is None  # two passes: a pass of their own
