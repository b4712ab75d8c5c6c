"""The declared input of an ONNX file: the graph rewrites that make it take bytes, pixels or the normalised image.

``normalize_in_model`` (fp32): a graph that takes the normalised image gets a prologue that normalises
pixels itself (``Cast`` for bytes, then one ``Mul`` and one ``Add`` per channel). ``retarget_quantized_input``
(int8 QDQ): edgekit's pixel-folded QDQ graph quantizes its normalised input straight onto the pixel grid
(``onnx_int8.fuse_pixel_prologue``); for bytes the codes become the input itself, for pixels one
``QuantizeLinear(1/255)`` makes them, and the first convolution's border is filled with the mean pixel's
code by constant strips joined with ``Concat`` (a ``Pad`` has one fill value for all channels).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import ExportError
from edgekit.export.passes.fold_input_normalization import PIXELS
from edgekit.export.passes.graph_utils import drop_unread_initializers
from edgekit.input_contract import PIXEL_STEP, ExtraInputInfo, InputContract

PROLOGUE = "edgekit_input"


def normalize_in_model(model: onnx.ModelProto, mean, std, kind: str) -> onnx.ModelProto:
    """``model`` (fp32, taking ``(pixels - mean) / std`` NCHW) made to take ``kind`` (``pixels`` or
    ``bytes``) with a prologue ``[Cast] -> Mul(gain) -> Add(shift)``; ``normalized`` returns it unchanged."""
    if kind == "normalized":
        return model
    graph = model.graph
    x = graph.input[0].name
    mean = np.asarray(mean, np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(std, np.float64).reshape(1, -1, 1, 1)
    unit = PIXEL_STEP if kind == "bytes" else 1.0
    gain = numpy_helper.from_array((unit / std).astype(np.float32), f"{PROLOGUE}_gain")
    shift = numpy_helper.from_array((-mean / std).astype(np.float32), f"{PROLOGUE}_shift")
    normalized = f"{PROLOGUE}_normalized"
    for node in graph.node:
        node.input[:] = [normalized if name == x else name for name in node.input]
    nodes = []
    source = x
    if kind == "bytes":
        source = f"{PROLOGUE}_float"
        nodes.append(helper.make_node("Cast", [x], [source], f"{PROLOGUE}_cast", to=TensorProto.FLOAT))
        graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    nodes += [helper.make_node("Mul", [source, gain.name], [f"{PROLOGUE}_scaled"], f"{PROLOGUE}_mul"),
              helper.make_node("Add", [f"{PROLOGUE}_scaled", shift.name], [normalized], f"{PROLOGUE}_add")]
    graph.initializer.extend([gain, shift])
    _prepend(graph, nodes)
    return model


def retarget_quantized_input(model: onnx.ModelProto, mean, kind: str) -> onnx.ModelProto:
    """An int8 QDQ ``model`` whose input was fused onto the pixel grid (``PIXELS + "_quantize"``) made to
    take ``kind``: ``bytes`` (uint8 codes), ``pixels`` (float [0, 1]); ``normalized`` is returned unchanged.
    Exact: on pixel inputs the codes reaching the first convolution are the same as before. Raises
    ``ExportError`` when the graph has no such input (the normalisation could not be folded)."""
    if kind == "normalized":
        return model
    graph = model.graph
    nodes = {n.name: n for n in graph.node}
    quantize = nodes.get(PIXELS + "_quantize")
    if quantize is None:
        raise ExportError(f"this model's first layer cannot take pixels in int8, so --input {kind} is not possible; "
                          "pass --input normalized")
    pad = nodes.get(PIXELS + "_pad")
    x = graph.input[0].name
    inits = {t.name: t for t in graph.initializer}
    codes = quantize.output[0]
    pads = numpy_helper.to_array(inits[pad.input[1]]).astype(int).tolist() if pad is not None else None
    removed = [quantize] + ([pad] if pad is not None else [])
    new_nodes = []
    source = x
    if kind == "pixels":
        scale = numpy_helper.from_array(np.asarray(PIXEL_STEP, np.float32), f"{PROLOGUE}_scale")
        zero = numpy_helper.from_array(np.asarray(0, np.uint8), f"{PROLOGUE}_zero_point")
        graph.initializer.extend([scale, zero])
        source = f"{PROLOGUE}_codes"
        new_nodes.append(helper.make_node("QuantizeLinear", [x, scale.name, zero.name], [source],
                                          f"{PROLOGUE}_quantize"))
    else:
        graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    if pads is not None and any(pads):
        fill = np.clip(np.rint(255.0 * np.asarray(mean, np.float64)), 0, 255).astype(np.uint8)
        shape = [int(d.dim_value) for d in graph.input[0].type.tensor_type.shape.dim]
        strips, source = _mean_strips(source, shape, pads, fill)
        new_nodes += strips[0]
        graph.initializer.extend(strips[1])
    for node in graph.node:
        node.input[:] = [source if name == codes else name for name in node.input]
    for node in removed:
        graph.node.remove(node)
    _prepend(graph, new_nodes)
    drop_unread_initializers(graph)
    return model


def _prepend(graph, nodes: list) -> None:
    """Put ``nodes`` first in ``graph.node`` (protobuf lists take no slice assignment)."""
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)


def _mean_strips(x: str, shape: list[int], pads: list[int], fill: np.ndarray):
    """``Concat`` nodes padding NCHW uint8 ``x`` by ``pads`` (ONNX order) with per-channel ``fill`` codes."""
    n, c, h, w = shape
    top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
    nodes, constants = [], []
    current, size = x, [n, c, h, w]
    for axis, before, after in ((3, left, right), (2, top, bottom)):
        if not before and not after:
            continue
        inputs = []
        for side, extent in (("before", before), ("after", after)):
            if extent:
                strip = list(size)
                strip[axis] = extent
                value = np.broadcast_to(fill.reshape(1, -1, 1, 1), strip).copy()
                constants.append(numpy_helper.from_array(value, f"{PROLOGUE}_fill_axis{axis}_{side}"))
                inputs.append((side, constants[-1].name))
        out = f"{PROLOGUE}_filled_axis{axis}"
        ordered = [name for side, name in inputs if side == "before"] + [current]
        ordered += [name for side, name in inputs if side == "after"]
        nodes.append(helper.make_node("Concat", ordered, [out], f"{PROLOGUE}_fill_axis{axis}", axis=axis))
        size[axis] += before + after
        current = out
    return (nodes, constants), current


def onnx_input_contract(model: onnx.ModelProto, kind: str, mean, std) -> InputContract:
    """The contract of an ONNX file taking ``kind``: NCHW, its input's type, codes of 1/255 for bytes."""
    tensor_type = model.graph.input[0].type.tensor_type
    dtype = {TensorProto.UINT8: "uint8", TensorProto.INT8: "int8", TensorProto.FLOAT: "float32"}[tensor_type.elem_type]
    shape = tuple(int(d.dim_value) for d in tensor_type.shape.dim)
    scale, zero_point = (PIXEL_STEP, 0) if kind == "bytes" else (None, None)
    return InputContract(kind=kind, dtype=dtype, layout="NCHW", shape=shape, mean=tuple(float(m) for m in mean),
                         std=tuple(float(s) for s in std), scale=scale, zero_point=zero_point)


def onnx_extra_inputs(model: onnx.ModelProto) -> list[ExtraInputInfo]:
    """The inputs after the image, as the file takes them (NCHW, as PyTorch does)."""
    extra = []
    for value in model.graph.input[1:]:
        shape = tuple(int(d.dim_value) for d in value.type.tensor_type.shape.dim)
        extra.append(ExtraInputInfo(value.name, shape, "NCHW" if len(shape) == 4 else None))
    return extra


def onnx_output_facts(model: onnx.ModelProto) -> list[dict]:
    """Name, type and shape of each graph output (ONNX int8 outputs are float: QDQ ends in DequantizeLinear)."""
    names = {TensorProto.FLOAT: "float32", TensorProto.UINT8: "uint8", TensorProto.INT8: "int8"}
    return [{"name": o.name, "dtype": names.get(o.type.tensor_type.elem_type, "other"),
             "shape": [int(d.dim_value) for d in o.type.tensor_type.shape.dim]} for o in model.graph.output]
