"""Pass: a constant added to (or subtracted from) a convolution's output joins the convolution's bias.

``conv(x) + c`` is ``conv'(x)`` with bias ``b + c`` (``c`` a scalar or one value per output channel), and the
ADD's fused activation moves onto the convolution. MobileNetV3's and GhostNet's hard-sigmoid gates,
``relu6(fc2(s) + 3) / 6``, lower to CONV_2D -> ADD 3 (fused RELU6) -> MUL 1/6; after this pass the ADD is gone
and the CONV_2D carries RELU6 itself, as in litert-torch's files. Exact up to fp32 rounding of the sum's
order: ``(sum + b) + c`` becomes ``sum + (b + c)``.

Applies only to float graphs (before int8 quantization) and only where the convolution's output is read by
nothing else and has no fused activation of its own.
"""

from __future__ import annotations

import numpy as np

from edgekit.export.tflite.graph_pass import GraphPassResult
from edgekit.export.tflite.ir import Graph, Op

NAME = "fold_add_into_bias"
#: Ops computing ``sum + bias`` whose bias is input 2 and that take a fused activation.
BIASED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def per_channel_constant(graph: Graph, name: str, channels: int) -> np.ndarray | None:
    """The float32 constant ``name`` as one value per channel of a tensor whose last axis has ``channels``
    entries (a scalar is repeated), or None when it is not a constant broadcasting along that axis only."""
    tensor = graph.tensors.get(name)
    if tensor is None or not tensor.is_constant or tensor.dtype != "float32" or tensor.quant is not None:
        return None
    value = np.asarray(tensor.data)
    if value.size == 1:
        return np.full(channels, float(value.ravel()[0]), dtype=np.float64)
    if value.shape[-1] != channels or value.size != channels:
        return None
    return value.reshape(channels).astype(np.float64)


def _foldable(graph: Graph, op: Op, producers, consumers) -> tuple[Op, str, np.ndarray] | None:
    if op.kind not in ("ADD", "SUB") or len(op.inputs) != 2:
        return None
    positions = [i for i, name in enumerate(op.inputs) if not graph.tensors[name].is_constant]
    if len(positions) != 1 or (op.kind == "SUB" and positions[0] != 0):
        return None
    x = op.inputs[positions[0]]
    producer = producers.get(x)
    if (producer is None or producer.kind not in BIASED_OPS or producer.options.get("activation", "NONE") != "NONE"
            or len(consumers.get(x, [])) != 1 or x in graph.outputs or producer.outputs != [x]):
        return None
    out = graph.tensors[op.outputs[0]]
    if graph.tensors[x].dtype != "float32" or graph.tensors[x].quant is not None or out.shape != graph.shape(x):
        return None
    constant = per_channel_constant(graph, op.inputs[1 - positions[0]], graph.shape(x)[-1])
    if constant is None:
        return None
    return producer, x, -constant if op.kind == "SUB" else constant


def fold_add_into_bias(graph: Graph) -> GraphPassResult:
    """Fold every ADD/SUB of a constant that directly follows a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
    into that op's bias (module doc). Edits ``graph`` in place; returns what it folded."""
    result = GraphPassResult(NAME)
    producers, consumers = graph.producers(), graph.consumers()
    dropped: set[int] = set()
    for op in graph.ops:
        match = _foldable(graph, op, producers, consumers)
        if match is None:
            continue
        producer, x, constant = match
        channels = graph.shape(x)[-1]
        bias_name = producer.inputs[2] if len(producer.inputs) > 2 and producer.inputs[2] else None
        bias = np.zeros(channels) if bias_name is None else np.asarray(graph.tensors[bias_name].data, np.float64)
        new_bias = graph.add_constant((bias_name or x) + "_shifted", (bias + constant).astype(np.float32))
        producer.inputs = [*producer.inputs[:2], new_bias]
        producer.options["activation"] = op.options.get("activation", "NONE")
        producer.outputs = list(op.outputs)
        producers[op.outputs[0]] = producer
        dropped.add(id(op))
        result.details.append(f"{op.kind} of a constant after {producer.kind} {producer.name or x} folded into its "
                              f"bias (activation {producer.options['activation']})")
    if dropped:
        graph.ops = [op for op in graph.ops if id(op) not in dropped]
        graph.remove_unused()
    result.changed = len(dropped)
    return result
