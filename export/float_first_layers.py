"""Keep the first convolutions of a QDQ int8 ONNX model in float when its quantization loses too much.

Quantization noise is not equally costly everywhere. In BatchNorm networks the first layers amplify it:
noise at 35 dB SQNR added to an EfficientNet-style net's stem output reaches the logits at 22 dB, added
after its last block at 45 dB (efficientnet_b0: 24.6 dB after block 1, 45.5 dB after block 8), because
depthwise channels with little variance on natural images get large BatchNorm gains. Taking the Q/DQ
pairs out of the first few convolutions removes the noise where it is amplified most, at a small share
of the multiply-adds; ONNX Runtime runs those nodes with its float kernels.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edgekit.export.passes.graph_utils import drop_unread_initializers

#: The simulated int8 graph's cosine to the fp32 graph (per output, worst, on the calibration images) that
#: the first layers are kept in float to reach: issue 13's goal of 0.98, plus what the calibration images'
#: own ranges flatter it by (EfficientNet-style net: 0.9813 on them, 0.9794 on the bundled photos).
TARGET_COSINE = 0.985
#: At most this share of the convolutions' multiply-adds runs in float. MobileNetV2 (zoo init, 224, TFLite, 16
#: held-out crops) reaches 0.9830 with its first 4 layers in float (13.3%: the 16->96 expansion at 112x112 is
#: the 4th), 0.9785 with 3 (6.9%); MnasNet 1.0: 0.9802 with 4 (9.7%), 0.9848 with 8 (13.7%). The price is
#: higher than the share of multiply-adds, since these layers run at high resolution where memory traffic
#: counts: TFLite int8, XNNPACK, 1 thread, p10 of 400 interleaved runs on the 2-core VM: MobileNetV2 3.55 ms
#: all-int8, 3.95 ms with 3 layers float (+11%), 4.23 ms with 5 (+19%); MnasNet 3.78 / 4.21 ms with 8 (+11%).
MAX_FLOAT_MACS = 0.15
#: A float prefix is kept only where it takes at least this share off the cosine error (1 - cosine): ONNX
#: efficientnet_b0 (zoo init) grew to 10 float convolutions (13.0% of the MACs) for 0.94501 -> 0.94581 (1.5%),
#: where MobileNetV2, MnasNet and MobileViT-xxs cut 20-29% and MobileNetV3-Large 48%.
MIN_ERROR_CUT = 0.1
#: Calibration images the choice is measured on.
IMAGES = 16


@dataclass(frozen=True)
class FloatLayers:
    """What ``grow_float_prefix`` chose: ``convs`` first convolutions in float (``mac_share`` of all
    convolution multiply-adds), and the cosine to fp32 before and after (worst output, calibration images);
    ``layers`` names them (ONNX node names, TFLite output tensors) where the caller filled it in."""

    convs: int
    mac_share: float
    cosine_before: float
    cosine_after: float
    layers: tuple[str, ...] = ()

    def note(self) -> str:
        if self.convs == 0:
            missed = "" if self.cosine_before >= TARGET_COSINE else (
                f"; no float prefix within {MAX_FLOAT_MACS:.0%} of the multiply-adds took {MIN_ERROR_CUT:.0%} off "
                "its error")
            return (f"all layers int8: the int8 graph is at cosine {self.cosine_before:.5f} from fp32 on the "
                    f"calibration images (goal {TARGET_COSINE:g}){missed}")
        named = f" ({', '.join(self.layers)})" if self.layers else ""
        return (f"first {self.convs} convolutions{named} and the ops before them run in float "
                f"({100 * self.mac_share:.1f}% of the multiply-adds), where their quantization noise was amplified "
                f"most: cosine to fp32 on the calibration images {self.cosine_before:.5f} -> {self.cosine_after:.5f} "
                f"(goal {TARGET_COSINE:g}); --no-float-first-layers quantizes them too")


def float_prefix_in(notes: Sequence[str]) -> str | None:
    """"first N convolutions" when an export's ``notes`` hold ``FloatLayers.note`` of a float prefix, else None."""
    return next((n.split(" (")[0] for n in notes if n.startswith("first ") and " convolutions" in n), None)


def grow_float_prefix(shares: Sequence[float], score: Callable[[int], float], *, target: float = TARGET_COSINE,
                      max_macs: float = MAX_FLOAT_MACS) -> FloatLayers:
    """The policy both formats share: how many first layers to keep in float.

    ``shares[k - 1]`` is the share of the multiply-adds of the first ``k`` layers (non-decreasing);
    ``score(k)`` the worst output's cosine to fp32 on the calibration images with the first ``k`` in float
    (``score(0)``: all int8). Grows ``k`` while the score misses ``target`` and the share stays within
    ``max_macs``; returns the smallest ``k`` that scored best, or 0 when that takes less than ``MIN_ERROR_CUT``
    off the error of all-int8.
    """
    before = best = score(0)
    chosen, share = 0, 0.0
    for k, used in enumerate(shares, start=1):
        if best >= target or used > max_macs:
            break
        cosine = score(k)
        if cosine > best:
            best, chosen, share = cosine, k, used
    if 1 - best > (1 - before) * (1 - MIN_ERROR_CUT):
        return FloatLayers(0, 0.0, before, before)
    return FloatLayers(chosen, share, before, best)


def keep_first_layers_float(quantized, reference, images_nchw: np.ndarray, *, target: float = TARGET_COSINE,
                            max_macs: float = MAX_FLOAT_MACS, extra: dict[str, np.ndarray] | None = None):
    """``quantized`` (a QDQ ``onnx.ModelProto``) with its first convolutions in float, as few as reach
    ``target`` (worst output's mean cosine of the float-simulated graph to ``reference``, the fp32 model it was
    quantized from, on up to ``IMAGES`` of ``images_nchw``) within ``max_macs`` of the multiply-adds; the
    count that scored best when none reaches it (``grow_float_prefix``). Returns ``(model, FloatLayers)``;
    the model is ``quantized`` itself when no layer is kept in float. ``extra``: values of the model's inputs
    after the image by name, one row per image."""
    from edgekit.runtimes.onnx_runtime import OnnxRuntime

    images = np.ascontiguousarray(images_nchw[:IMAGES], dtype=np.float32)
    others = [v[: len(images)] for v in (extra or {}).values()]  # in the model's input order
    expected = _run(reference, images, OnnxRuntime, "all", others)
    order = [n.name for n in quantized.graph.node]
    macs = conv_macs(reference)
    total = sum(macs.values()) or 1
    convs = [n.name for n in quantized.graph.node if n.op_type == "Conv" and n.name in macs]
    shares = list(np.cumsum([macs[name] for name in convs]) / total)

    def candidate(k: int):
        if k == 0:
            return quantized
        return dequantize_nodes(quantized, set(order[: order.index(convs[k - 1]) + 1]))

    def score(k: int) -> float:
        got = _run(candidate(k), images, OnnxRuntime, "disable", others)
        return worst_cosine(expected, got)

    chosen = grow_float_prefix(shares, score, target=target, max_macs=max_macs)
    return candidate(chosen.convs), replace(chosen, layers=tuple(convs[: chosen.convs]))


def dequantize_nodes(model, float_nodes: set[str]):
    """A copy of QDQ ``model`` in which the nodes named in ``float_nodes`` compute in float. A Q/DQ pair on a
    tensor that one of them produces and only they read becomes a float Clip to the range the Q saturates at
    (ONNX Runtime folds a Relu or Clip into such a Q); pairs whose Q and DQ differ in scale or zero point, or
    are per channel, stay. Their constant inputs (weights, biases) become the dequantized float values.
    Tensors crossing into or out of the region keep their quantization."""
    import copy

    from onnx import helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    dropped, renamed, clips = [], {}, []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]:
        made_by = producer.get(q.input[0])
        dqs = readers.get(q.output[0], [])
        if made_by is None or made_by.name not in float_nodes or not dqs:
            continue
        # only a pair with the same scale and zero point is an identity up to rounding (the pixel input's
        # per-channel QuantizeLinear also undoes the normalisation)
        if any(d.op_type != "DequantizeLinear" or d.output[0] in outputs or list(d.input[1:]) != list(q.input[1:])
               for d in dqs):
            continue
        if any(r.name not in float_nodes for d in dqs for r in readers.get(d.output[0], [])):
            continue
        scale = numpy_helper.to_array(inits[q.input[1]]) if q.input[1] in inits else None
        zero = numpy_helper.to_array(inits[q.input[2]]) if len(q.input) > 2 and q.input[2] in inits else None
        if scale is None or zero is None or scale.size != 1 or zero.size != 1:
            continue
        # ORT drops a Relu or Clip that the Q after it clamps (zero point at the range's end): keep the clamp
        info = np.iinfo(zero.dtype)
        low, high = ((np.array([info.min, info.max], np.float64) - float(zero)) * float(scale)).astype(np.float32)
        bounds = [numpy_helper.from_array(np.array(v, np.float32), f"{q.output[0]}_float_{end}")
                  for v, end in ((low, "min"), (high, "max"))]
        graph.initializer.extend(bounds)
        clips.append((q, helper.make_node("Clip", [q.input[0], bounds[0].name, bounds[1].name], [dqs[0].output[0]],
                                          f"{q.name}_float_clip")))
        renamed.update({d.output[0]: dqs[0].output[0] for d in dqs[1:]})
        dropped += [q, *dqs]
    for node in graph.node:
        if node.name not in float_nodes:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits \
                    or len(readers.get(name, [])) != 1:
                continue
            value = _dequantized(dq, inits, numpy_helper)
            graph.initializer.append(numpy_helper.from_array(value, name + "_float"))
            node.input[i] = name + "_float"
            dropped.append(dq)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    for q, clip in clips:
        graph.node.insert(list(graph.node).index(q), clip)
    for node in dropped:
        graph.node.remove(node)
    drop_unread_initializers(graph)
    return model


def conv_macs(model) -> dict[str, int]:
    """Multiply-adds per Conv node of an fp32 ONNX model (output elements x input channels per group x kernel)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights and node.output[0] in shapes:
            w = weights[node.input[1]]
            found[node.name] = math.prod(shapes[node.output[0]]) * math.prod(w[1:])
    return found


def _dequantized(dq, inits, numpy_helper) -> np.ndarray:
    codes = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    zero = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 and dq.input[2] \
        else np.zeros_like(scale)
    if scale.size > 1:
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % codes.ndim
        shape = [1] * codes.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((codes - zero) * scale).astype(np.float32)


def _run(model, images: np.ndarray, runtime_class, optimization: str, others=()) -> list[np.ndarray]:
    import os
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory(prefix="edgekit-float-layers-") as tmp:
        path = os.path.join(tmp, "model.onnx")
        if others:  # declare the further inputs' layouts, as the exported file will, so none is guessed
            from edgekit.export.metadata import onnx_metadata_props
            from edgekit.export.onnx_export import extra_input_fields
            from edgekit.export.onnx_input import onnx_extra_inputs

            model = copy.deepcopy(model)
            for key, value in onnx_metadata_props(extra_input_fields(onnx_extra_inputs(model))):
                model.metadata_props.add(key=key, value=value)
        onnx.save(model, path)
        with runtime_class(path, optimization=optimization) as runtime:
            runs = [runtime.run([images[i : i + 1], *(v[i : i + 1] for v in others)]) for i in range(len(images))]
    return [np.concatenate(outs).astype(np.float64) for outs in zip(*runs, strict=True)]


def worst_cosine(expected: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> float:
    """The lowest over outputs of the mean over images of the cosine between ``expected`` and ``got`` (each a
    list of per-output arrays with images along axis 0)."""
    return min(_cosine(e, g) for e, g in zip(expected, got, strict=True))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1.0)))
