"""Calibration ranges for TFLite int8: run the lowered fp32 graph in LiteRT, observe every activation, and
hand the values to the estimator both formats share (``edgekit.export.activation_ranges``)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import numpy as np

from edgekit.errors import DataError, ExportError
from edgekit.export.activation_ranges import DEFAULT_PERCENTILE, RANGE_METHODS, estimate_ranges
from edgekit.export.tflite.ir import Graph
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
) -> dict[str, tuple[float, float]]:
    """``(lo, hi)`` of every non-constant float tensor of the fp32 ``graph`` over ``images_nhwc``.

    ``images_nhwc`` is float32 ``(N, H, W, C)``, preprocessed as the model expects; images run one at a
    time through LiteRT on XNNPACK, with every observed tensor made an output of the model. Keys are the
    graph's tensor names. ``method`` and ``percentile``: ``activation_ranges.estimate_ranges``'s
    (``"minmax"``, TensorFlow's default: the extremes; ``"percentile"``: both tails clipped; ``"mse"``:
    least-squares clipping, a second pass). Raises ``DataError`` for images that do not fit the graph's
    input and ``ExportError`` for a graph with other than one float input or an unknown method.
    """
    if method not in CALIBRATION_METHODS:
        raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    if len(graph.inputs) != 1 or graph.tensors[graph.inputs[0]].dtype != "float32":
        raise ExportError("calibration needs a graph with exactly one float32 input")
    input_shape = graph.shape(graph.inputs[0])
    images = np.asarray(images_nhwc, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] < 1 or images.shape[1:] != tuple(input_shape[1:]):
        raise DataError(
            f"calibration images have shape {images.shape}; the model takes (N, {', '.join(map(str, input_shape[1:]))})"
            " NHWC float32 with N >= 1"
        )
    watched = [name for name, t in graph.tensors.items() if t.dtype == "float32" and not t.is_constant]
    observer = _observer(graph, watched)

    def observe(names: list[str]):
        return ((1, values) for values in _activations(observer, images, names))

    return estimate_ranges(observe, watched, len(images), method=method, percentile=percentile)


def _observer(graph: Graph, names: list[str]) -> LiteRTObserver:
    """LiteRT on XNNPACK over ``graph`` written with every observed tensor as an output (a run keeps them
    all); raises ExportError when a name is lost. Measured on the loaded 2-core VM, per image: ResNet-18
    162 ms on the builtin kernels with all tensors preserved, 45 ms on XNNPACK with two threads;
    ShuffleNetV2 1.0x 23 and 11 ms; activations equal to 3e-5 of each tensor's largest value."""
    probe = copy.copy(graph)
    probe.outputs = list(dict.fromkeys([*graph.outputs, *(n for n in names if n not in graph.inputs)]))
    observer = LiteRTObserver(write_tflite(probe), threads=_THREADS, xnnpack=True)
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
