"""Calibration ranges for int8 quantization: run the fp32 graph in LiteRT and observe every activation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edgekit.errors import DataError, ExportError
from edgekit.export.tflite.ir import Graph
from edgekit.export.tflite.writer import write_tflite

CALIBRATION_METHODS = ("minmax", "percentile", "mse")
_HISTOGRAM_BINS = 2048


def calibrate_ranges(
    graph: Graph,
    images_nhwc: np.ndarray,
    *,
    method: str = "minmax",
    percentile: float = 99.99,
    channel_means: dict[str, np.ndarray] | None = None,
) -> dict[str, tuple[float, float]]:
    """``(min, max)`` of every non-constant float tensor of the fp32 ``graph`` over ``images_nhwc``.

    ``images_nhwc`` is float32 ``(N, H, W, C)``, preprocessed as the model expects; images run one at a
    time through LiteRT's reference kernels (no XNNPACK, so every intermediate tensor exists). Keys are the
    graph's tensor names. ``method="minmax"`` (TensorFlow's default) takes the extremes over all images;
    ``"percentile"`` clips each tensor's lower and upper tails at ``100 - percentile`` and ``percentile``
    percent of all its observed values (a second pass over 2048-bin histograms), which trades saturation of
    rare outliers for finer steps. Raises ``DataError`` for images that do not fit the graph's input and
    ``ExportError`` for a graph with other than one float input or an unknown method.

    ``channel_means``, when given, is filled in the same pass with every watched tensor's mean over
    images and positions per channel (last axis): the expected inputs that ``quantize_graph`` corrects
    weight-rounding bias with.
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

    lo = {name: np.inf for name in watched}
    hi = {name: -np.inf for name in watched}
    sums: dict[str, np.ndarray] = {}
    for name, value in _activations(graph, images, watched):
        lo[name] = min(lo[name], float(value.min()))
        hi[name] = max(hi[name], float(value.max()))
        if channel_means is not None:
            flat = value.reshape(-1, value.shape[-1]) if value.ndim else value.reshape(1, 1)
            sums[name] = sums.get(name, 0.0) + flat.mean(axis=0, dtype=np.float64)
    if channel_means is not None:
        channel_means.update({name: total / len(images) for name, total in sums.items()})
    if method == "minmax":
        return {name: (lo[name], hi[name]) for name in watched}

    counts = {name: np.zeros(_HISTOGRAM_BINS, dtype=np.int64) for name in watched}
    for name, value in _activations(graph, images, watched):
        if hi[name] > lo[name]:
            counts[name] += np.histogram(value, bins=_HISTOGRAM_BINS, range=(lo[name], hi[name]))[0]
    ranges = {}
    for name in watched:
        if hi[name] <= lo[name]:
            ranges[name] = (lo[name], hi[name])
            continue
        edges = np.linspace(lo[name], hi[name], _HISTOGRAM_BINS + 1)
        if method == "mse":
            ranges[name] = mse_range(counts[name], edges)
            continue
        cdf = np.cumsum(counts[name]) / counts[name].sum()
        tail = 1.0 - percentile / 100.0
        first = int(np.searchsorted(cdf, tail, side="left"))  # bin holding the lower clip point
        last = int(np.searchsorted(cdf, 1.0 - tail, side="left"))
        ranges[name] = (float(edges[first]), float(edges[min(last + 1, _HISTOGRAM_BINS)]))
    return ranges


def mse_range(counts: np.ndarray, edges: np.ndarray, steps: int = 255) -> tuple[float, float]:
    """The clipping range whose int8 quantization has the least mean squared error over a histogram.

    Candidates shrink the observed range towards 0 (both ends by one factor; a range that starts at 0,
    as after ReLU, only at the top). Error per value: ``step**2 / 12`` inside the range (uniform
    rounding), the squared distance to the nearest end outside it.
    """
    centers = (edges[:-1] + edges[1:]) / 2
    lo, hi = min(float(edges[0]), 0.0), max(float(edges[-1]), 0.0)
    weights = counts / max(counts.sum(), 1)
    best, best_error = (lo, hi), np.inf
    for factor in np.linspace(1.0, 0.1, 91):
        a, b = lo * factor, hi * factor
        step = (b - a) / steps
        clipped = np.clip(centers, a, b)
        error = float(np.sum(weights * ((centers - clipped) ** 2 + np.where(centers == clipped, step**2 / 12, 0.0))))
        if error < best_error:
            best, best_error = (a, b), error
    return best


def _activations(graph: Graph, images: np.ndarray, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """Run each image and yield ``(tensor name, value)`` for every name in ``names``, image after image."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=write_tflite(graph),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    missing = [n for n in names if n not in index]
    if missing:
        raise ExportError(f"tensor {missing[0]!r} is not in the written model; the writer must keep tensor names")
    input_index = interpreter.get_input_details()[0]["index"]
    for image in images:
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        for name in names:
            yield name, interpreter.get_tensor(index[name])
