"""Pass: the uint8 <-> int8 edge conversions of an int8 graph become ops XNNPACK runs.

``quantize_graph(io="uint8")`` gives the file a uint8 input and output around its int8 graph with one
QUANTIZE at each edge that only moves the zero point by 128. XNNPACK (LiteRT 2.3) takes no QUANTIZE between
uint8 and int8, so both run on LiteRT's builtin kernel, outside the partition (the partition count stays 1
because they sit at the ends). Measured at 1 thread (fastest and p10 of 300-600 runs in bursts of 50, load
average ~2): MobileNetV3-Small int8 1.10 -> 1.00 ms with the input edge as DEQUANTIZE + QUANTIZE; DeepLabV3
int8 5.06 -> 3.79 ms (litert-torch's file: 4.15 ms) with its 256x256x21 output edge moved in front of the
final bilinear RESIZE as well, where it converts 16x16x21 values instead of 1.4 million.

Each such QUANTIZE becomes a DEQUANTIZE to float32 and a QUANTIZE to the other type: exact, since every
value is an integer times the shared scale. An output edge behind a RESIZE_BILINEAR,
RESIZE_NEAREST_NEIGHBOR, RESHAPE or TRANSPOSE whose input and output share one quantization moves in front of it
(repeatedly): those ops commute with a shift of the zero point (XNNPACK's bilinear weights sum to one in
its fixed point), so XNNPACK's output bytes are unchanged; LiteRT's builtin bilinear kernel rounds ties of
int8 and uint8 apart (1 code on 3% of a test's values), and runs only where XNNPACK does not.
"""

from __future__ import annotations

import numpy as np

from edgekit.export.tflite.graph_pass import GraphPassResult
from edgekit.export.tflite.ir import Graph, Op, Quant

NAME = "delegate_uint8_edges"
#: Ops that give the same bytes, shifted by 128, for a uint8 input as for its int8 twin.
ZERO_POINT_EQUIVARIANT = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE", "TRANSPOSE")
_TYPES = {"int8", "uint8"}


def _same_quant(a: Quant | None, b: Quant | None) -> bool:
    return (a is not None and b is not None and np.array_equal(np.asarray(a.scale), np.asarray(b.scale))
            and np.array_equal(np.asarray(a.zero_point), np.asarray(b.zero_point)))


def _is_edge(graph: Graph, op: Op) -> bool:
    """A QUANTIZE between int8 and uint8 that only moves the zero point by 128."""
    if op.kind != "QUANTIZE":
        return False
    src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if {src.dtype, dst.dtype} != _TYPES or src.quant is None or dst.quant is None:
        return False
    shift = 128 if dst.dtype == "uint8" else -128
    return (np.array_equal(np.asarray(src.quant.scale), np.asarray(dst.quant.scale)) and np.asarray(
        src.quant.scale).size == 1 and np.array_equal(np.asarray(src.quant.zero_point) + shift,
                                                      np.asarray(dst.quant.zero_point)))


def _move_before(graph: Graph, edge: Op, producer: Op) -> None:
    """``producer`` (an equivariant op) -> ``edge`` (int8 -> uint8) becomes edge' -> producer in uint8."""
    x, y = producer.inputs[0], producer.outputs[0]
    out = edge.outputs[0]
    twin = graph.add_tensor(x + "_uint8", graph.shape(x), "uint8", Quant(
        np.asarray(graph.tensors[x].quant.scale).copy(), np.asarray(graph.tensors[x].quant.zero_point) + 128))
    edge.inputs, edge.outputs = [x], [twin]
    producer.inputs = [twin, *producer.inputs[1:]]
    producer.outputs = [out]
    del graph.tensors[y]
    ops = [op for op in graph.ops if op is not edge]
    ops.insert(ops.index(producer), edge)
    graph.ops = ops


def delegate_uint8_edges(graph: Graph) -> GraphPassResult:
    """Rewrite every uint8 <-> int8 QUANTIZE of the quantized ``graph`` as DEQUANTIZE + QUANTIZE, after moving
    output edges in front of zero-point-equivariant ops (module doc). Edits ``graph`` in place."""
    result = GraphPassResult(NAME)
    for edge in [op for op in graph.ops if _is_edge(graph, op)]:
        if graph.tensors[edge.outputs[0]].dtype != "uint8":
            continue
        while True:  # an output edge moves in front of the ops that commute with it
            producers, consumers = graph.producers(), graph.consumers()
            producer = producers.get(edge.inputs[0])
            if (producer is None or producer.kind not in ZERO_POINT_EQUIVARIANT
                    or len(consumers.get(edge.inputs[0], [])) != 1 or edge.inputs[0] in graph.outputs
                    or not _same_quant(graph.tensors[producer.inputs[0]].quant,
                                       graph.tensors[producer.outputs[0]].quant)
                    or graph.tensors[producer.inputs[0]].dtype != "int8"):
                break
            _move_before(graph, edge, producer)
            result.details.append(f"uint8 output edge moved in front of {producer.kind} {producer.name}")
            result.changed += 1
    for edge in [op for op in graph.ops if _is_edge(graph, op)]:
        src = edge.inputs[0]
        middle = graph.add_tensor(src + "_float", graph.shape(src), "float32")
        dequantize = Op("DEQUANTIZE", [src], [middle], {}, edge.name)
        edge.inputs = [middle]
        graph.ops.insert(graph.ops.index(edge), dequantize)
        result.changed += 1
        result.details.append(f"{graph.tensors[src].dtype} -> {graph.tensors[edge.outputs[0]].dtype} QUANTIZE at "
                              f"{edge.name or src} as DEQUANTIZE + QUANTIZE")
    result.changed += _merge_float_islands(graph, result.details)
    return result


def _merge_float_islands(graph: Graph, details: list[str]) -> int:
    """Where an edge meets a float island (ops kept in float between DEQUANTIZE and QUANTIZE), the float
    values pass straight through: a DEQUANTIZE of the input edge's int8 tensor reads the edge's float tensor
    instead (the same values), and an island's QUANTIZE that only feeds the output edge quantizes to uint8
    itself (zero point +128 on the same scale rounds and clamps the same). Returns the ops removed."""
    removed = 0
    for edge in [op for op in graph.ops if op.kind == "QUANTIZE"]:
        src, dst = graph.tensors[edge.inputs[0]], graph.tensors[edge.outputs[0]]
        if src.dtype != "float32" or dst.dtype != "int8" or edge.outputs[0] in graph.outputs:
            continue
        producer = graph.producers().get(edge.inputs[0])
        if producer is None or producer.kind != "DEQUANTIZE" or graph.tensors[producer.inputs[0]].dtype != "uint8":
            continue
        for reader in [op for op in graph.consumers().get(edge.outputs[0], []) if op.kind == "DEQUANTIZE"]:
            graph.replace_uses(reader.outputs[0], edge.inputs[0])
            graph.ops.remove(reader)
            details.append(f"float island at {reader.name or reader.outputs[0]} reads the input edge's floats")
            removed += 1
        if not graph.consumers().get(edge.outputs[0]):
            graph.ops.remove(edge)
            removed += 1
    for edge in [op for op in graph.ops if op.kind == "QUANTIZE" and op.outputs[0] in graph.outputs]:
        if graph.tensors[edge.outputs[0]].dtype != "uint8" or graph.tensors[edge.inputs[0]].dtype != "float32":
            continue
        producers, consumers = graph.producers(), graph.consumers()
        dequantize = producers.get(edge.inputs[0])
        if dequantize is None or dequantize.kind != "DEQUANTIZE" or len(consumers[edge.inputs[0]]) != 1:
            continue
        exit_ = producers.get(dequantize.inputs[0])
        if (exit_ is None or exit_.kind != "QUANTIZE" or graph.tensors[exit_.inputs[0]].dtype != "float32"
                or len(consumers[dequantize.inputs[0]]) != 1 or dequantize.inputs[0] in graph.outputs):
            continue
        edge.inputs = [exit_.inputs[0]]
        graph.ops = [op for op in graph.ops if op is not exit_ and op is not dequantize]
        details.append(f"float island ending at {exit_.name or exit_.outputs[0]} quantizes to the uint8 output")
        removed += 2
    graph.remove_unused()
    return removed
