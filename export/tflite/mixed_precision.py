"""Keep the first layers of a TFLite int8 graph in float where their quantization noise costs most.

The TFLite mapping of ``float_first_layers``'s policy (``grow_float_prefix``: the same target, MAC budget
and growth rule as the ONNX exporter). A candidate keeps every op up to its k-th weighted op (in execution
order) in float between a DEQUANTIZE and a QUANTIZE (``quantize_graph(float_nodes=...)``); each is measured
on the calibration images through LiteRT with XNNPACK against the fp32 graph. XNNPACK runs the float
CONV_2D/DEPTHWISE_CONV_2D and the DEQUANTIZE/QUANTIZE at the island's edges in the same partition as the
int8 ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from edgekit.export.float_first_layers import IMAGES, MAX_FLOAT_MACS, TARGET_COSINE, FloatLayers, grow_float_prefix
from edgekit.export.float_first_layers import worst_cosine as _worst_cosine
from edgekit.export.tflite.ir import Graph
from edgekit.export.tflite.quantize import FLOAT_OPS, quantize_graph
from edgekit.export.tflite.writer import write_tflite

#: Ops whose multiply-adds count, and a layer boundary of the float prefix.
LAYER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")


def layer_macs(graph: Graph) -> dict[str, int]:
    """Multiply-adds per weighted op of the NHWC ``graph``, keyed by the op's first output tensor."""
    found = {}
    for op in graph.ops:
        if op.kind not in LAYER_OPS:
            continue
        out = int(np.prod(graph.shape(op.outputs[0])))
        if op.kind == "TRANSPOSE_CONV":  # each input element is spread over O x kh x kw outputs
            w = graph.shape(op.inputs[1])
            found[op.outputs[0]] = int(np.prod(graph.shape(op.inputs[2]))) * w[0] * w[1] * w[2]
        elif op.kind == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, C x multiplier)
            w = graph.shape(op.inputs[1])
            found[op.outputs[0]] = out * w[1] * w[2]
        else:  # CONV_2D filter (O, kh, kw, I / groups); FULLY_CONNECTED (O, I)
            found[op.outputs[0]] = out * int(np.prod(graph.shape(op.inputs[1])[1:]))
    return found


def quantize_with_float_fallback(
    graph: Graph,
    ranges: dict[str, tuple[float, float]],
    images_nhwc: np.ndarray,
    *,
    io: str = "int8",
    float_ops: Mapping[str, str] = FLOAT_OPS,
    target: float = TARGET_COSINE,
    max_macs: float = MAX_FLOAT_MACS,
    extra: dict[str, np.ndarray] | None = None,
) -> tuple[Graph, FloatLayers]:
    """``quantize_graph(graph, ranges, ...)`` with its first layers in float, as few as reach ``target``.

    ``images_nhwc``: the calibration images ``ranges`` came from, in the fp32 ``graph``'s input units (up to
    ``IMAGES`` are used). The all-int8 graph and each float prefix are run in LiteRT (XNNPACK) with float edges
    and compared with the fp32 graph (worst output's mean cosine); the prefix grows by one weighted op while
    that misses ``target`` and the prefix holds at most ``max_macs`` of the multiply-adds
    (``float_first_layers.grow_float_prefix``). Returns the graph quantized with ``io`` and the choice, whose
    ``note()`` says how many layers stayed in float, their share of the multiply-adds and the cosine before
    and after. ``extra``: values of the graph's inputs after the image by name, in its layout, one row per image.
    Raises what ``quantize_graph`` raises.
    """
    from edgekit.runtimes.observer import LiteRTObserver, first_rows

    images = np.ascontiguousarray(images_nhwc[:IMAGES], dtype=np.float32)
    macs = layer_macs(graph)
    total = sum(macs.values()) or 1
    order = [op.outputs[0] for op in graph.ops if op.outputs]
    layers = [name for name in order if name in macs]
    shares = list(np.cumsum([macs[name] for name in layers]) / total)

    def prefix(k: int) -> set[str]:
        return set(order[: order.index(layers[k - 1]) + 1]) if k else set()

    def outputs(model: Graph) -> list[np.ndarray]:
        observer = LiteRTObserver(write_tflite(model), xnnpack=True, extra=first_rows(extra, len(images)))
        runs = list(observer.iterate(images, model.outputs))
        return [np.concatenate([run[name] for run in runs]).astype(np.float64) for name in model.outputs]

    expected = outputs(graph)

    def score(k: int) -> float:
        candidate = quantize_graph(graph, ranges, io="float", float_nodes=prefix(k), float_ops=float_ops)
        return _worst_cosine(expected, outputs(candidate))

    chosen = grow_float_prefix(shares, score, target=target, max_macs=max_macs)
    quantized = quantize_graph(graph, ranges, io=io, float_nodes=prefix(chosen.convs), float_ops=float_ops)
    return quantized, replace(chosen, layers=tuple(layers[: chosen.convs]))
