"""Pixel input: fold the model's ``(x - mean) / std`` normalisation into its first convolutions.

An int8 model whose input is the normalised image has to requantize it on one per-tensor grid that is
coarser than the pixel grid of every channel (ImageNet normalisation: 4.76/255 per code against 1/255/std,
i.e. 4.37 to 4.44/255); on ShuffleNetV2 1.0x that rounding alone costs 0.005 of logit cosine, a quarter of
all the int8 error. With the normalisation inside the model the int8 input is the camera byte itself
(``q = pixel - 128``, scale 1/255, zero point -128): lossless, and an app needs no float preprocessing.

The fold is exact in float: a convolution reading the normalised input computes
``conv(W, pad_0((x - m) / s)) = conv(W / s, pad_m(x)) - sum(W * m / s)``, where ``pad_m`` pads channel ``c``
with its mean ``m_c`` (the pixel that normalises to the 0 PyTorch pads with). TFLite's PAD/PADV2 fill
every channel with one value (and XNNPACK runs neither PADV2 nor per-channel fills), so the fill is
constant border strips of mean pixels joined to the image by CONCATENATION: delegable, sharing the
input's int8 scale (no requantisation), each fill rounded to the nearest pixel code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.export.tflite.ir import Graph, Op

#: Metadata value of ``input_normalization`` for a model folded by ``take_pixel_input``.
IN_MODEL = "in-model"
#: The range of pixel inputs, in units of 1/255 of a byte (what ``preprocess`` divides by).
PIXEL_RANGE = (0.0, 1.0)


class PixelInputNotApplicable(Exception):
    """The graph's input is read by something other than convolutions (so the fold would not be exact)."""


@dataclass
class PixelInputFold:
    """What ``take_pixel_input`` did: which convolutions absorbed the normalisation, and the fill ops."""

    convolutions: list[str]
    padded: int


def take_pixel_input(graph: Graph, mean, std) -> PixelInputFold:
    """Make ``graph`` (fp32 NHWC, one input) read pixels in [0, 1] instead of ``(pixels - mean) / std``.

    Every reader of the input must be a CONV_2D, directly or through one zero PAD; each gets weights
    divided by ``std`` per input channel, its bias reduced by the mean's contribution, and its padding
    (PAD, or SAME padding made explicit) filled per channel with ``mean``. Raises
    ``PixelInputNotApplicable`` (and leaves ``graph`` untouched) when another op reads the input, or the
    channel count differs from ``len(mean)``.
    """
    x = graph.inputs[0]
    channels = graph.shape(x)[-1]
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if len(mean) != channels or len(std) != channels:
        raise PixelInputNotApplicable(f"the input has {channels} channels but mean/std have {len(mean)}")
    if np.any(std <= 0):
        raise PixelInputNotApplicable("std has a value <= 0")
    readers = graph.consumers().get(x, [])
    plans = []
    for op in readers:
        pad = None
        conv = op
        if op.kind == "PAD":
            users = graph.consumers().get(op.outputs[0], [])
            if len(users) != 1 or users[0].kind != "CONV_2D" or op.outputs[0] in graph.outputs:
                raise PixelInputNotApplicable("the input's padding is read by something other than one convolution")
            pad, conv = op, users[0]
        if conv.kind != "CONV_2D" or conv.inputs[0] != (pad.outputs[0] if pad else x):
            raise PixelInputNotApplicable(f"the input is read by {op.kind}, not only by convolutions")
        if graph.shape(conv.inputs[1])[-1] != channels:
            raise PixelInputNotApplicable("a grouped convolution reads the input")
        if pad is not None and conv.options.get("padding", "VALID") == "SAME":
            raise PixelInputNotApplicable("the input is padded twice (PAD, then a SAME convolution)")
        plans.append((pad, conv))
    if not plans:
        raise PixelInputNotApplicable("nothing reads the input")

    names = []
    padded = 0
    for pad, conv in plans:
        paddings = _paddings(graph, pad, conv)
        w = graph.tensors[conv.inputs[1]].data.astype(np.float64)  # OHWI
        b = graph.tensors[conv.inputs[2]].data.astype(np.float64)
        w_folded = w / std.reshape(1, 1, 1, -1)
        b_folded = b - (w * (mean / std).reshape(1, 1, 1, -1)).sum(axis=(1, 2, 3))
        conv.inputs[1] = graph.add_constant(conv.inputs[1] + "_pixels", w_folded.astype(np.float32))
        conv.inputs[2] = graph.add_constant(conv.inputs[2] + "_pixels", b_folded.astype(np.float32))
        names.append(conv.name or conv.outputs[0])
        if pad is not None:
            graph.ops.remove(pad)
        if paddings is None:
            conv.inputs[0] = x
            continue
        conv.options["padding"] = "VALID"
        filled = _fill_per_channel(graph, x, paddings, mean, conv)
        graph.ops[graph.ops.index(conv):graph.ops.index(conv)] = filled
        conv.inputs[0] = filled[-1].outputs[0]
        padded += 1
    graph.remove_unused()
    return PixelInputFold(convolutions=names, padded=padded)


def _paddings(graph: Graph, pad: Op | None, conv: Op) -> list[list[int]] | None:
    """``[[0, 0], [top, bottom], [left, right], [0, 0]]`` the convolution reads, or None for none."""
    if pad is not None:
        p = graph.tensors[pad.inputs[1]].data.astype(int).tolist()
        return p if any(any(row) for row in p) else None
    if conv.options.get("padding", "VALID") != "SAME":
        return None
    _, h, w, _ = graph.shape(conv.inputs[0])
    _, kh, kw, _ = graph.shape(conv.inputs[1])
    sh, sw = conv.options.get("stride", (1, 1))
    rows = []
    for size, k, s in ((h, kh, sh), (w, kw, sw)):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        rows.append([total // 2, total - total // 2])
    return [[0, 0], rows[0], rows[1], [0, 0]] if any(any(r) for r in rows) else None


def _fill_per_channel(graph: Graph, x: str, paddings, mean: np.ndarray, conv: Op) -> list[Op]:
    """Pad ``x`` with constant strips of per-channel ``mean`` pixels: one CONCATENATION per padded axis.

    Constant border strips joined to the image keep every op delegable to XNNPACK (which runs
    CONCATENATION but not PADV2), and all of them share the input's int8 scale.
    """
    n, h, w, c = graph.shape(x)
    base = (conv.name or conv.outputs[0]) + "_pixel_fill"
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
        inputs = [name for side, name in parts if side == "before"] + [current]
        inputs += [name for side, name in parts if side == "after"]
        shape[axis] += before + after
        out = graph.add_tensor(f"{base}_axis{axis}", shape)
        ops.append(Op("CONCATENATION", inputs, [out], {"axis": axis}, conv.name))
        current = out
    return ops


def to_pixels(images: np.ndarray, mean, std, channel_axis: int) -> np.ndarray:
    """Normalised float images back to pixels in [0, 1]: ``x * std + mean`` along ``channel_axis``."""
    shape = [1] * images.ndim
    shape[channel_axis] = -1
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.asarray(std, dtype=np.float32).reshape(shape)
    return (np.asarray(images, dtype=np.float32) * s + m).astype(np.float32)
