"""Calibration ranges for TFLite int8, computed on the fp32 ONNX graph the TFLite graph was lowered from.

The lowering records where each activation's values are in the ONNX graph (``ir.Origin``: an ONNX tensor, a
subset of its channels for the convolutions a folded channel shuffle cut into groups, a constant factor where
a pass moved one into the next layer's weights). ``onnx_ranges`` observes those ONNX tensors in ONNX Runtime
(``runtimes.observer.ActivationObserver``, the observer the ONNX backend calibrates with, several images per
run) and hands the values to the estimator both formats share (``edgekit.export.activation_ranges``): the
same images, the same statistic, the same tensors as ``--format onnx``. A tensor that shares its int8 params
with others (a concatenation, a reshape, a pooling) takes their range; only a tensor that exists in neither
form (a decomposed op's inner value with no ONNX tensor and no partner) is observed on the lowered graph in
LiteRT (``calibrate_ranges``), and the result counts them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from onnx import numpy_helper

from edgekit.errors import DataError, ExportError
from edgekit.export.activation_ranges import (
    DEFAULT_PERCENTILE,
    ONE_PASS_METHODS,
    RANGE_METHODS,
    RangePass,
    estimate_ranges,
)
from edgekit.export.onnx_int8 import observed_ranges, viewed
from edgekit.export.tflite.from_onnx import lowering_source
from edgekit.export.tflite.ir import LAYER_NORM_STEPS, Graph, Origin
from edgekit.export.tflite.quantize import shared_quant_classes
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.observer import LiteRTObserver, ObservationError

CALIBRATION_METHODS = RANGE_METHODS
#: LiteRT threads for the calibration runs (XNNPACK: 53 -> 45 ms per ResNet-18 image from one to two).
_THREADS = min(2, os.cpu_count() or 1)


def calibrate_ranges(
    graph: Graph,
    images_nhwc: np.ndarray,
    *,
    method: str = "minmax",
    percentile: float = DEFAULT_PERCENTILE,
    names: list[str] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, tuple[float, float]]:
    """``(lo, hi)`` of every non-constant float tensor of the fp32 ``graph`` (or only of ``names``) over
    ``images_nhwc`` (and ``extra``: values of the graph's inputs after the image by name, in its layout, one row
    per image), observed on ``graph`` itself.

    ``images_nhwc`` is float32 ``(N, H, W, C)``, preprocessed as the model expects; images run one at a
    time through LiteRT on XNNPACK, with every observed tensor made an output of the model. Keys are the
    graph's tensor names. ``method`` and ``percentile``: ``activation_ranges.estimate_ranges``'s
    (``"minmax"``, TensorFlow's default: the extremes; ``"percentile"``: both tails clipped; ``"mse"``:
    least-squares clipping, a second pass). Raises ``DataError`` for images that do not fit the graph's
    input and ``ExportError`` for a graph with other than one float input or an unknown method.
    """
    if method not in CALIBRATION_METHODS:
        raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    if len(graph.inputs) != 1 + len(extra or {}) or graph.tensors[graph.inputs[0]].dtype != "float32":
        raise ExportError("calibration needs a graph with one float32 image input and values for every other input")
    input_shape = graph.shape(graph.inputs[0])
    images = np.asarray(images_nhwc, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] < 1 or images.shape[1:] != tuple(input_shape[1:]):
        raise DataError(
            f"calibration images have shape {images.shape}; the model takes (N, {', '.join(map(str, input_shape[1:]))})"
            " NHWC float32 with N >= 1"
        )
    watched = [name for name, t in graph.tensors.items() if t.dtype == "float32" and not t.is_constant]
    if names is not None:
        watched = [name for name in watched if name in set(names)]
    observer = _observer(graph, watched, extra)

    def observe(names: list[str]):
        return ((1, values) for values in _activations(observer, images, names))

    return estimate_ranges(observe, watched, len(images), method=method, percentile=percentile)


@dataclass(frozen=True)
class Ranges:
    """Calibrated ``(lo, hi)`` per float activation of a TFLite graph, and where they were computed."""

    ranges: dict[str, tuple[float, float]]
    on_onnx: int  # tensors whose values were observed on the ONNX graph
    shared: int  # tensors that took the range of the tensors they share int8 params with
    on_tflite: int  # tensors with no ONNX counterpart and no partner, observed on the lowered graph
    in_gptq_pass: bool = False  # the ONNX values came from GPTQ's pass (the graph before rounding)

    def note(self) -> str:
        where = f"ranges of {self.on_onnx} tensors computed on the ONNX graph"
        if self.in_gptq_pass:
            where += " (in GPTQ's pass over the images, before rounding)"
        if self.shared:
            where += f", {self.shared} shared with the tensors they are quantized with"
        if self.on_tflite:
            where += f", {self.on_tflite} observed on the lowered graph (no ONNX tensor holds them)"
        return where


def onnx_ranges(
    graph: Graph,
    onnx_model,
    images_nchw: np.ndarray,
    images_nhwc: np.ndarray,
    *,
    method: str = "minmax",
    percentile: float = DEFAULT_PERCENTILE,
    gathered: ViewedRangePass | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Ranges:
    """``(lo, hi)`` of every non-constant float tensor of the fp32 ``graph`` (lowered from ``onnx_model`` by
    ``from_onnx.onnx_to_tflite_graph``), computed on ``onnx_model`` (module doc).

    ``images_nchw``: the calibration images as ``onnx_model`` takes them; ``images_nhwc``: the same images as
    ``graph`` takes them (pixels where the normalisation was folded), for the tensors observed in LiteRT.
    ``gathered``: the values already ranged in GPTQ's pass (``range_pass``), used where they cover ``graph``.
    ``extra``: values of the model's inputs after the image by name, as ``onnx_model`` takes them (NCHW), one
    row per image. Raises ``ExportError`` when ONNX Runtime cannot run ``onnx_model`` or for an unknown method.
    """
    if method not in CALIBRATION_METHODS:
        raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    watched = [name for name, t in graph.tensors.items() if t.dtype == "float32" and not t.is_constant]
    origins = {name: graph.tensors[name].origin for name in watched if graph.tensors[name].origin is not None}
    keys = {_key(o) for o in origins.values()}
    in_gptq_pass = gathered is not None and gathered.seen > 0 and keys <= set(gathered.views)
    if in_gptq_pass:
        by_origin = gathered.ranges()
    else:
        source = lowering_source(onnx_model)
        views = _views(origins.values(), source)
        by_origin = observed_ranges(source, images_nchw, sorted({t for t, _ in views.values()}), method=method,
                                    percentile=percentile, views=views, extra=extra)
    ranges = {name: by_origin[_key(origin)] for name, origin in origins.items()}
    shared, alone = {}, []
    classes = list(shared_quant_classes(graph).values())
    class_of = {member: members for members in classes for member in members}
    for name in watched:
        if name in ranges:
            continue
        known = [ranges[m] for m in class_of.get(name, ()) if m in ranges]
        if known:
            shared[name] = (min(r[0] for r in known), max(r[1] for r in known))
        else:
            alone.append(name)
    observed = {}
    if alone:
        observed = calibrate_ranges(graph, images_nhwc, method=method, percentile=percentile, names=alone,
                                    extra=channels_last(extra))
    return Ranges({**ranges, **shared, **observed}, len(ranges), len(shared), len(observed), in_gptq_pass)


class ViewedRangePass:
    """A ``RangePass`` over the origins of a lowered graph's activations, fed with batches of their ONNX tensors
    (``names``) by a pass that runs the ONNX graph anyway: GPTQ's (``ptq_steps.prepare_model(ranges=)``)."""

    def __init__(self, views: dict, images: int, *, method: str, percentile: float) -> None:
        self.views = views
        self.names = sorted({tensor for tensor, _ in views.values()})
        self._pass = RangePass(list(views), images, method=method, percentile=percentile)

    @property
    def seen(self) -> int:
        return self._pass.seen

    def add(self, count: int, values) -> None:
        self._pass.add(count, viewed(self.views, values))

    def ranges(self) -> dict[str, tuple[float, float]]:
        return self._pass.ranges()


def range_pass(graph: Graph, onnx_model, images: int, *, method: str,
               percentile: float = DEFAULT_PERCENTILE) -> ViewedRangePass | None:
    """A pass ranging every origin of ``graph``'s activations that GPTQ can feed while it runs ``onnx_model``
    (the graph before rounding, equalized or not: the same tensors); None where it cannot: a method of two
    passes, or an origin on a tensor the lowering's own ONNX rewrites made (``lowering_source``)."""
    if method not in ONE_PASS_METHODS:
        return None
    origins = [t.origin for t in graph.tensors.values() if t.origin is not None and not t.is_constant]
    views = _views(origins, onnx_model)
    made = {o for node in onnx_model.graph.node for o in node.output} | {i.name for i in onnx_model.graph.input}
    if not all(tensor in made for tensor, _ in views.values()):
        return None
    return ViewedRangePass(views, images, method=method, percentile=percentile)


def channels_last(extra: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    """Values of a model's inputs after the image (NCHW, as PyTorch takes them) in the lowered graph's layout:
    4-D ones NHWC, as the lowering lays out every 4-D input."""
    if extra is None:
        return None
    return {name: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) if v.ndim == 4 else v for name, v in extra.items()}


def _views(origins, source) -> dict:
    """``{key: (ONNX tensor, the origin's values from a batch of it)}`` for ``origins`` over ``source``."""
    unique = sorted(set(origins), key=repr)
    gammas = {o.derived[4] for o in unique if o.derived and o.derived[4]}
    constants = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer if t.name in gammas}
    return {_key(o): _view(o, constants) for o in unique}


def _key(origin: Origin) -> str:
    return repr(origin)


def _view(origin: Origin, constants: dict[str, np.ndarray]):
    """``(ONNX tensor, the values origin names as a function of a batch of it)``: channels on axis 1."""
    def view(value: np.ndarray) -> np.ndarray:
        if origin.derived:
            value = layer_norm_step(value, *origin.derived[1:4], constants.get(origin.derived[4]))
        if origin.channels is not None:
            value = np.take(value, origin.channels, axis=1)
        return value * np.float32(origin.scale) if origin.scale != 1.0 else value
    return origin.onnx, view


def layer_norm_step(x: np.ndarray, step: str, axis: int, epsilon: float, gamma: np.ndarray | None) -> np.ndarray:
    """Inner value ``step`` (``ir.LAYER_NORM_STEPS``) of ONNX LayerNormalization of ``x`` over the axes from
    ``axis`` on, as the TFLite lowering computes it (``lower_tensor.op_LayerNormalization``)."""
    if step not in LAYER_NORM_STEPS:
        raise ExportError(f"unknown LayerNormalization step {step!r}")
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float32)
    if step == "mean":
        return mean
    centered = x - mean
    if step == "centered":
        return centered
    square = centered * centered
    if step == "square":
        return square
    var = square.mean(axis=axes, keepdims=True, dtype=np.float32)
    if step == "var":
        return var
    var_eps = var + np.float32(epsilon)
    if step == "var_eps":
        return var_eps
    rstd = 1.0 / np.sqrt(var_eps)
    if step == "rstd":
        return rstd
    normalized = centered * rstd
    if step == "normalized":
        return normalized
    return normalized * (1.0 if gamma is None else gamma.astype(np.float32))  # "scaled"


def _observer(graph: Graph, names: list[str], extra=None) -> LiteRTObserver:
    """LiteRT on XNNPACK over ``graph`` written with every observed tensor as an output (a run keeps them
    all); raises ExportError when a name is lost. Measured on the loaded 2-core VM, per image: ResNet-18
    162 ms on the builtin kernels with all tensors preserved, 45 ms on XNNPACK with two threads;
    ShuffleNetV2 1.0x 23 and 11 ms; activations equal to 3e-5 of each tensor's largest value."""
    probe = copy.copy(graph)
    probe.outputs = list(dict.fromkeys([*graph.outputs, *(n for n in names if n not in graph.inputs)]))
    observer = LiteRTObserver(write_tflite(probe), threads=_THREADS, xnnpack=True, extra=extra)
    missing = [n for n in names if n not in observer.tensors]
    if missing:
        raise ExportError(f"tensor {missing[0]!r} is not in the written model; the writer must keep tensor names")
    return observer


def _activations(observer: LiteRTObserver, images: np.ndarray, names: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """The named tensors of each image, run alone, image after image."""
    try:
        yield from observer.iterate(images, names)
    except ObservationError as exc:
        raise DataError(f"LiteRT could not run the calibration images ({exc.reason})") from None
