"""Pixel input in TFLite: the mean-pixel border of a folded first convolution, as ops XNNPACK runs.

The normalisation itself is folded on the ONNX graph, once for both formats
(``passes.fold_input_normalization``): the first convolution reads pixels in [0, 1] with weights ``W / std``,
and its border holds each channel's mean pixel (the pixel that normalises to the 0 PyTorch pads with), so
the fold is exact. An int8 model whose input is the normalised image would requantize it on one per-tensor
grid coarser than every channel's pixel grid (ImageNet normalisation: 4.76/255 per code against
1/255/std, i.e. 4.37 to 4.44/255); with the normalisation inside the model the int8 input is the camera
byte itself (``q = pixel - 128``, scale 1/255, zero point -128): lossless, and an app needs no float
preprocessing.

What is TFLite's own is the border: PAD/PADV2 fill every channel with one value (and XNNPACK runs neither
PADV2 nor per-channel fills), so the lowering (``from_onnx``) emits constant border strips of mean pixels
joined to the image by CONCATENATION: delegable, sharing the input's int8 scale (no requantisation), each
fill rounded to the nearest pixel code.
"""

from __future__ import annotations

import numpy as np

from edgekit.export.passes.fold_input_normalization import PIXEL_RANGE  # noqa: F401  (re-exported)
from edgekit.export.tflite.ir import Graph, Op

#: Metadata value of ``input_normalization`` for a model that takes pixels and normalises them itself.
IN_MODEL = "in-model"


def lower_pixel_fills(graph: Graph) -> int:
    """Replace every ``PIXEL_FILL`` pseudo-op of ``graph`` (from ``from_onnx``: its input padded with
    ``options["mean"]`` per channel by ``options["paddings"]``) with ``fill_per_channel``'s strips, which
    its readers then read. Returns how many were lowered."""
    count = 0
    for op in [op for op in graph.ops if op.kind == "PIXEL_FILL"]:
        ops = fill_per_channel(graph, op.inputs[0], op.options["paddings"], op.options["mean"], op.name)
        graph.replace_uses(op.outputs[0], ops[-1].outputs[0])
        at = graph.ops.index(op)
        graph.ops[at:at + 1] = ops
        count += 1
    graph.remove_unused()
    return count


def fill_per_channel(graph: Graph, x: str, paddings, mean: np.ndarray, name: str) -> list[Op]:
    """Ops padding NHWC ``x`` with constant strips of per-channel ``mean`` pixels: one CONCATENATION per
    padded axis (width first, then height), named after ``name`` (the convolution that reads them).

    ``paddings``: ``[[0, 0], [top, bottom], [left, right], [0, 0]]``. The strips are constants added to
    ``graph``; the ops are returned for the caller to place, the last one's output being the padded image.
    Constant strips joined to the image keep every op delegable to XNNPACK (which runs CONCATENATION but
    not PADV2), and all of them share the input's int8 scale.
    """
    base = name + "_pixel_fill"
    mean = np.asarray(mean, np.float64).reshape(-1)
    ops: list[Op] = []
    current = x
    for axis, (before, after) in ((2, paddings[2]), (1, paddings[1])):
        if not before and not after:
            continue
        shape = list(graph.shape(current))
        parts = []
        for side, size in (("before", before), ("after", after)):
            if size:
                strip = shape.copy()
                strip[axis] = size
                value = np.broadcast_to(mean.astype(np.float32), strip).copy()
                parts.append((side, graph.add_constant(f"{base}_axis{axis}_{side}", value)))
        inputs = [strip for side, strip in parts if side == "before"] + [current]
        inputs += [strip for side, strip in parts if side == "after"]
        shape[axis] += before + after
        out = graph.add_tensor(f"{base}_axis{axis}", shape)
        ops.append(Op("CONCATENATION", inputs, [out], {"axis": axis}, name))
        current = out
    return ops


def to_pixels(images: np.ndarray, mean, std, channel_axis: int) -> np.ndarray:
    """Normalised float images back to pixels in [0, 1]: ``x * std + mean`` along ``channel_axis``."""
    shape = [1] * images.ndim
    shape[channel_axis] = -1
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.asarray(std, dtype=np.float32).reshape(shape)
    return (np.asarray(images, dtype=np.float32) * s + m).astype(np.float32)
