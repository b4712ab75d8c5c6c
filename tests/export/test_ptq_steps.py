"""prepare_model: the post-training steps in their one order on the fp32 ONNX graph. Before rounding the
result computes what the original does (equalization and the fold are exact in float); after it every
weight lies on its int8 grid, and the reference (``reference=True``) is the same graph before rounding."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgekit.export.onnx_export import simplify, torch_to_onnx
from edgekit.export.passes.fold_input_normalization import pixel_prologue
from edgekit.export.ptq_steps import prepare_model
from edgekit.export.weight_rounding import correct_weight_rounding

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SHAPE = (1, 3, 32, 32)


class Tiny(nn.Module):
    """Stem conv (stride 2, padded) -> pointwise -> depthwise -> pointwise -> pool -> classifier: one pair
    of each kind for equalization, a first conv for the fold, a Gemm for GPTQ."""

    def __init__(self, second_reader: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.pw1 = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU())
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pw2 = nn.Sequential(nn.Conv2d(16, 16, 1), nn.ReLU())
        self.fc = nn.Linear(16, 10)
        self.second_reader = second_reader

    def forward(self, x):
        y = self.pw2(self.dw(self.pw1(self.stem(x))))
        if self.second_reader:
            y = y + x.mean()
        return self.fc(y.mean(dim=(2, 3)))


def onnx_of(module: nn.Module):
    return simplify(torch_to_onnx(module.eval(), SHAPE))


def images(count: int = 16, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).uniform(0, 1, (count, 3, 32, 32))
    return ((pixels - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(STD, (1, 3, 1, 1))).astype(np.float32)


def run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: image[None]})[0] for image in x])


@pytest.fixture(scope="module")
def tiny():
    return onnx_of(Tiny())


def test_reference_is_exact_in_float_and_reads_pixels(tiny):
    ready = prepare_model(tiny, images(), mean=MEAN, std=STD, reference=True)
    assert ready.pixel_input and pixel_prologue(ready.model) is not None
    assert [n.split(":")[0] for n in ready.notes] == ["cross-layer equalization",
                                                     "input normalisation folded into the first convolution"]
    x = images(4, seed=1)
    expected = run(tiny, x)
    np.testing.assert_allclose(run(ready.model, x), expected, atol=1e-4 * np.abs(expected).max(), rtol=0)
    _, left = correct_weight_rounding(ready.model, images(4))
    assert not left.on_grid  # nothing rounded yet


def test_full_pipeline_rounds_every_weight_onto_its_grid_in_order(tiny):
    ready = prepare_model(tiny, images(), mean=MEAN, std=STD)
    reference = prepare_model(tiny, images(), mean=MEAN, std=STD, reference=True)
    assert [n.split(" ")[0] for n in ready.notes] == ["cross-layer", "input", "optimal", "bias"]
    _, left = correct_weight_rounding(ready.model, None)  # no images needed: nothing is off its grid
    assert left.corrected == [] and len(left.on_grid) == 5  # 4 convolutions and the classifier
    # the reference is this graph before rounding: the same nodes, so --per-layer matches every tensor
    assert [n.name for n in reference.model.graph.node] == [n.name for n in ready.model.graph.node]
    x = images(4, seed=1)
    cosine = np.sum(run(ready.model, x) * run(reference.model, x)) / (
        np.linalg.norm(run(ready.model, x)) * np.linalg.norm(run(reference.model, x)))
    assert cosine > 0.999  # int8 weights in float: close to the reference


def test_without_gptq_bias_correction_covers_every_layer(tiny):
    ready = prepare_model(tiny, images(), mean=MEAN, std=STD, equalize=False, optimal_rounding=False)
    assert ready.notes[-1].startswith("bias correction: nearest-rounding shift taken out of 5 layers' biases")


def test_fold_refusal_is_reported_not_raised():
    ready = prepare_model(onnx_of(Tiny(second_reader=True)), None, mean=MEAN, std=STD, equalize=False,
                          reference=True)
    assert not ready.pixel_input and "not read by exactly one Conv" in ready.fold_refusal
    assert pixel_prologue(ready.model) is None
