"""fold_input_normalization: let the first convolution read pixels, so int8 quantizes its input losslessly.

The graph keeps its input (the normalised image ``(pixels - mean) / std``) but turns it back into pixels
in [0, 1] right away and folds the normalisation into the convolution that reads it::

    input -> Conv(W, b, pads)   becomes   input -> Pad(pads, 0) -> Mul(std) -> Add(mean) -> Conv(W / std, b', 0)

with ``b' = b - sum(W * mean / std)``. Padding comes first, with the 0 PyTorch pads the normalised image
with, so the border reads the mean pixel exactly as before: the rewrite is exact in float. Quantized
with the range [0, 1], the Add's output is the pixel grid itself (scale 1/255), where the normalised
image would be rounded to one grid coarser than every channel's pixel step.

A backend whose file takes the pixels themselves (TFLite's ``--input bytes|pixels``) reads the prologue
back with ``pixel_prologue`` and maps it: the input becomes the pixels, the Pad a border of mean pixels.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph_utils import drop_unread_initializers
from .result import PassResult

#: Name of the tensor holding pixels in [0, 1]; quantizers give it the range PIXEL_RANGE.
PIXELS = "edgekit_pixels"
#: The range of pixel inputs, in units of 1/255 of a byte (what ``preprocess`` divides by).
PIXEL_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class PixelPrologue:
    """The prologue ``fold_input_normalization`` put in front of the first Conv, as a backend maps it.

    ``nodes``: the prologue's node names (Pad if any, Mul, Add); ``pads``: the border (top, left, bottom,
    right) the Conv reads, which holds each channel's mean pixel; ``mean``/``std``: the normalisation per
    channel; ``conv``: the name of the Conv that reads ``PIXELS``.
    """

    nodes: tuple[str, ...]
    pads: tuple[int, int, int, int]
    mean: np.ndarray
    std: np.ndarray
    conv: str


def pixel_prologue(model: onnx.ModelProto) -> PixelPrologue | None:
    """The ``PixelPrologue`` of a model folded by ``fold_input_normalization`` (input -> [Pad] -> Mul ->
    Add -> ``PIXELS`` -> one Conv), or None when the model has none in that form."""
    graph = model.graph
    nodes = {n.name: n for n in graph.node}
    inits = {t.name: t for t in graph.initializer}
    pad, mul, add = (nodes.get(f"{PIXELS}_{suffix}") for suffix in ("pad", "mul", "add"))
    source = graph.input[0].name if graph.input else None
    if mul is None or add is None or add.output[0] != PIXELS or mul.input[1] not in inits \
            or add.input[1] not in inits:
        return None
    if pad is not None:
        if pad.input[0] != source or mul.input[0] != pad.output[0] or pad.input[1] not in inits:
            return None
        spec = numpy_helper.to_array(inits[pad.input[1]]).astype(int).tolist()  # ONNX: all begins, then ends
        pads = (spec[2], spec[3], spec[6], spec[7])
    elif mul.input[0] != source:
        return None
    else:
        pads = (0, 0, 0, 0)
    readers = [n for n in graph.node if PIXELS in n.input]
    if len(readers) != 1 or readers[0].op_type != "Conv":
        return None
    names = tuple(n.name for n in (pad, mul, add) if n is not None)
    return PixelPrologue(names, pads, numpy_helper.to_array(inits[add.input[1]]).astype(np.float64).reshape(-1),
                         numpy_helper.to_array(inits[mul.input[1]]).astype(np.float64).reshape(-1),
                         readers[0].name or readers[0].output[0])


def fold_input_normalization(model: onnx.ModelProto, mean, std) -> PassResult:
    """Fold ``(x - mean) / std`` into the single plain (group 1) Conv that reads the graph's input.

    Returns the rewritten copy; ``changed`` is 0 (model unchanged, reason in ``details``) when the input
    has other readers, the Conv is grouped or its weights are not constants, or the channel count differs
    from ``len(mean)``. The inserted nodes are named ``edgekit_pixels_*``.
    """
    name = "fold_input_normalization"
    out = copy.deepcopy(model)
    graph = out.graph
    x = graph.input[0].name
    readers = [n for n in graph.node if x in n.input]
    inits = {t.name: t for t in graph.initializer}
    if len(readers) != 1 or readers[0].op_type != "Conv" or readers[0].input[0] != x:
        return PassResult(name, model, 0, ["the input is not read by exactly one Conv"])
    conv = readers[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if attrs.get("group", 1) != 1 or conv.input[1] not in inits or attrs.get("auto_pad", b"NOTSET") != b"NOTSET":
        return PassResult(name, model, 0, ["the first Conv is grouped, padded automatically or has non-constant "
                                           "weights"])
    w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
    mean = np.asarray(mean, np.float64).reshape(-1)
    std = np.asarray(std, np.float64).reshape(-1)
    if w.shape[1] != len(mean) or len(std) != len(mean):
        return PassResult(name, model, 0, [f"the first Conv reads {w.shape[1]} channels, mean/std have {len(mean)}"])
    has_bias = len(conv.input) > 2 and conv.input[2]
    b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if has_bias else np.zeros(w.shape[0])
    folded_w = w / std.reshape(1, -1, 1, 1)
    folded_b = b - (w * (mean / std).reshape(1, -1, 1, 1)).sum(axis=(1, 2, 3))

    def constant(suffix: str, value: np.ndarray) -> str:
        tensor = numpy_helper.from_array(np.asarray(value, np.float32), f"{PIXELS}_{suffix}")
        graph.initializer.append(tensor)
        return tensor.name

    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    nodes = []
    source = x
    if any(pads):
        top, left, bottom, right = pads
        spec = numpy_helper.from_array(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), f"{PIXELS}_pads")
        graph.initializer.append(spec)
        nodes.append(helper.make_node("Pad", [x, spec.name], [f"{PIXELS}_padded"], f"{PIXELS}_pad", mode="constant"))
        source = f"{PIXELS}_padded"
    channel = (1, -1, 1, 1)
    nodes.append(helper.make_node("Mul", [source, constant("std", std.reshape(channel))], [f"{PIXELS}_scaled"],
                                  f"{PIXELS}_mul"))
    nodes.append(helper.make_node("Add", [f"{PIXELS}_scaled", constant("mean", mean.reshape(channel))], [PIXELS],
                                  f"{PIXELS}_add"))
    conv.input[0] = PIXELS
    conv.input[1] = constant("weight", folded_w)
    if has_bias:
        conv.input[2] = constant("bias", folded_b)
    else:
        conv.input.append(constant("bias", folded_b))
    for attr in conv.attribute:
        if attr.name == "pads":
            attr.ints[:] = [0, 0, 0, 0]
    index = list(graph.node).index(conv)
    for offset, node in enumerate(nodes):
        graph.node.insert(index + offset, node)
    drop_unread_initializers(graph)
    return PassResult(name, out, 1, [f"{conv.name or conv.output[0]} reads pixels in [0, 1] ({PIXELS})"])
