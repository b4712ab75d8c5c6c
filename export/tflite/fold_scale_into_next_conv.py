"""Pass: a constant scale on a convolution's input, possibly behind one gating MUL, joins the convolution's weights.

``conv(W, t * s)`` is ``conv(W * s, t)`` along the input channels (``s`` a scalar or one value per channel),
and so is ``conv(W, x * (t * s))``: a squeeze-excite gate multiplies the feature map ``x`` by ``t * s`` and
the product is read only by the next convolution. MobileNetV3's and GhostNet's hard-sigmoid gates end in
``MUL 1/6`` followed by the gating MUL and the block's 1x1 projection; after this pass the ``MUL 1/6`` is
gone and the projection's weights carry the 1/6. Zero padding (SAME) commutes with the scale. Exact up to
fp32 rounding. The gated product then holds ``x * t``, not the ONNX tensor's ``x * t * s``, so it is
renamed (``<name>_unscaled``): nothing keyed by ONNX names (ranges, reports) binds to it by mistake, and its
``origin`` says ``ONNX tensor / s`` (none for a per-channel ``s``).

Applies only to float graphs (before int8 quantization); the scaling MUL and the gating MUL must have no
fused activation, and each tensor on the way must have the one reader.
"""

from __future__ import annotations

import numpy as np

from edgekit.export.tflite.fold_add_into_bias import per_channel_constant
from edgekit.export.tflite.graph_pass import GraphPassResult
from edgekit.export.tflite.ir import Graph, Op

NAME = "fold_scale_into_next_conv"
LINEAR_READERS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _sole_reader(graph: Graph, name: str, consumers) -> Op | None:
    readers = consumers.get(name, [])
    if len(readers) != 1 or name in graph.outputs or readers[0].inputs.count(name) != 1:
        return None
    return readers[0]


def _scaled_weights(graph: Graph, conv: Op, scale: np.ndarray) -> np.ndarray | None:
    """``conv``'s weights times ``scale`` (one value per input channel), or None when they cannot take it."""
    weights = graph.tensors[conv.inputs[1]]
    if not weights.is_constant or weights.dtype != "float32" or weights.quant is not None:
        return None
    w = np.asarray(weights.data, np.float64)
    uniform = bool(np.all(scale == scale[0]))
    if conv.kind == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, C x multiplier): channel c feeds c*m .. c*m+m-1
        per_output = np.repeat(scale, int(conv.options.get("depth_multiplier", 1)))
        return None if per_output.size != w.shape[-1] else w * per_output
    if uniform:
        return w * scale[0]
    if w.shape[-1] != scale.size:  # grouped CONV_2D: the filter sees a group's channels only
        return None
    return w * scale  # CONV_2D (O, kh, kw, I), FULLY_CONNECTED (O, I): the input channels are the last axis


def _match(graph: Graph, op: Op, consumers) -> tuple[str, np.ndarray, Op | None, Op, np.ndarray] | None:
    if op.kind != "MUL" or len(op.inputs) != 2 or op.options.get("activation", "NONE") != "NONE":
        return None
    positions = [i for i, name in enumerate(op.inputs) if not graph.tensors[name].is_constant]
    if len(positions) != 1:
        return None
    t = op.inputs[positions[0]]
    m = op.outputs[0]
    if graph.tensors[t].dtype != "float32" or graph.tensors[t].quant is not None or graph.shape(t) != graph.shape(m):
        return None
    scale = per_channel_constant(graph, op.inputs[1 - positions[0]], graph.shape(m)[-1])
    reader = _sole_reader(graph, m, consumers)
    if scale is None or reader is None:
        return None
    gate = None
    if reader.kind == "MUL":  # x * (t * s): the scale passes through when it lines up with the product's channels
        other = reader.inputs[1 - reader.inputs.index(m)]
        product = reader.outputs[0]
        if (reader.options.get("activation", "NONE") != "NONE" or graph.tensors[other].is_constant
                or graph.shape(m)[-1] not in (1, graph.shape(product)[-1])
                or (graph.shape(m)[-1] == 1 and not np.all(scale == scale[0]))):
            return None
        gate, reader = reader, _sole_reader(graph, product, consumers)
        scale = np.full(graph.shape(product)[-1], scale[0]) if scale.size != graph.shape(product)[-1] else scale
        if reader is None:
            return None
    conv_input = gate.outputs[0] if gate is not None else m
    if reader.kind not in LINEAR_READERS or reader.inputs[0] != conv_input or graph.shape(conv_input)[-1] != scale.size:
        return None
    weights = _scaled_weights(graph, reader, scale)
    return None if weights is None else (t, scale, gate, reader, weights)


def fold_scale_into_next_conv(graph: Graph) -> GraphPassResult:
    """Fold every constant MUL whose product reaches a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED input
    directly or through one gating MUL into that op's weights (module doc). Edits ``graph`` in place; returns
    what it folded."""
    result = GraphPassResult(NAME)
    consumers = graph.consumers()
    dropped: set[int] = set()
    for op in graph.ops:
        match = _match(graph, op, consumers)
        if match is None:
            continue
        t, scale, gate, conv, weights = match
        m = op.outputs[0]
        conv.inputs[1] = graph.add_constant(conv.inputs[1] + "_scaled", weights.astype(np.float32))
        target = gate if gate is not None else conv
        target.inputs = [t if name == m else name for name in target.inputs]
        consumers.setdefault(t, []).append(target)
        if gate is not None:
            product = gate.outputs[0]
            graph.rename(product, graph.unique(product + "_unscaled"))
            tensor = graph.tensors[gate.outputs[0]]
            uniform = bool(np.all(scale == scale[0])) and scale[0] != 0
            tensor.origin = tensor.origin.scaled(1.0 / scale[0]) if tensor.origin and uniform else None
            consumers = graph.consumers()
        dropped.add(id(op))
        what = f"{scale[0]:g}" if np.all(scale == scale[0]) else f"{scale.size} per-channel values"
        result.details.append(f"MUL by {what} at {op.name or m} folded into {conv.kind} {conv.name}'s weights"
                              + (" through the gating MUL" if gate is not None else ""))
    if dropped:
        graph.ops = [op for op in graph.ops if id(op) not in dropped]
        graph.remove_unused()
    result.changed = len(dropped)
    return result
