"""Calibration ranges for int8 quantization: run the fp32 graph in LiteRT and observe every activation."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import numpy as np

from edgekit.errors import DataError, ExportError
from edgekit.export.tflite.ir import Graph
from edgekit.export.tflite.quantize import WEIGHTED_OPS
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.observer import LiteRTObserver, ObservationError

CALIBRATION_METHODS = ("minmax", "percentile", "mse")
_HISTOGRAM_BINS = 2048
#: LiteRT threads for the calibration runs (XNNPACK: 53 -> 45 ms per ResNet-18 image from one to two).
_THREADS = min(2, os.cpu_count() or 1)


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
    time through LiteRT on XNNPACK, with every observed tensor made an output of the model. Keys are the
    graph's tensor names. ``method="minmax"`` (TensorFlow's default) takes the extremes over all images;
    ``"percentile"`` clips each tensor's lower and upper tails at ``100 - percentile`` and ``percentile``
    percent of all its observed values (on a 2048-bin histogram, found in the same pass: see ``_Tails``),
    which trades saturation of rare outliers for finer steps; ``"mse"`` takes a second pass for its
    histograms. Raises ``DataError`` for images that do not fit the graph's input and
    ``ExportError`` for a graph with other than one float input or an unknown method.

    ``channel_means``, when given, is filled in the same pass with the mean over images and positions per
    channel (last axis) of every tensor an op with int8 weights reads (``quantize.WEIGHTED_OPS``): the
    expected inputs that ``quantize_graph`` corrects weight-rounding bias with.
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
    averaged = {op.inputs[0] for op in graph.ops if op.kind in WEIGHTED_OPS} if channel_means is not None else set()

    tails: dict[str, _Tails] = {}
    tail = 1.0 - percentile / 100.0
    lo = {name: np.inf for name in watched}
    hi = {name: -np.inf for name in watched}
    sums: dict[str, np.ndarray] = {}
    for values in _activations(observer, images, watched):
        for name, value in values.items():
            if method == "percentile":  # its tails hold the extremes
                if name not in tails:
                    tails[name] = _Tails(len(images) * value.size, tail)
                tails[name].add(value)
            else:
                lo[name] = min(lo[name], float(value.min()))
                hi[name] = max(hi[name], float(value.max()))
            if name in averaged:
                flat = value.reshape(-1, value.shape[-1]) if value.ndim else value.reshape(1, 1)
                sums[name] = sums.get(name, 0.0) + flat.mean(axis=0, dtype=np.float64)
    if channel_means is not None:
        channel_means.update({name: total / len(images) for name, total in sums.items()})
    if method == "minmax":
        return {name: (lo[name], hi[name]) for name in watched}
    if method == "percentile":
        return {name: tails[name].range() for name in watched}

    # mse needs every bin, and the bins need the final range: a second pass (all activations of a
    # calibration set would take gigabytes to keep).
    spread = [name for name in watched if hi[name] > lo[name]]
    counts = {name: np.zeros(_HISTOGRAM_BINS, dtype=np.int64) for name in watched}
    for values in _activations(observer, images, spread):
        for name, value in values.items():
            counts[name] += np.histogram(value, bins=_HISTOGRAM_BINS, range=(lo[name], hi[name]))[0]
    ranges = {}
    for name in watched:
        if hi[name] <= lo[name]:
            ranges[name] = (lo[name], hi[name])
            continue
        ranges[name] = mse_range(counts[name], np.linspace(lo[name], hi[name], _HISTOGRAM_BINS + 1))
    return ranges


class _Tails:
    """The values of one tensor that decide its percentile range, gathered in the pass that finds its
    extremes, so percentile calibration needs no second run of the model.

    The range is the one of the 2048-bin histogram over ``[lo, hi]``: its lower end is the left edge of
    the first bin whose cumulative share reaches ``tail``, its upper end the right edge of the first bin
    whose share reaches ``1 - tail``. Bins grow with the values, so those bins are the bins of the
    ``r``-th smallest value (``r`` the least count with ``r / total >= tail``, as the float division
    says) and of the ``s``-th smallest (``s / total >= 1 - tail``): the ``r`` smallest and the
    ``total - s + 1`` largest values are all that is kept. Each image only adds values past the current
    ``r``-th smallest (or ``total - s + 1``-th largest), one comparison per value.
    """

    def __init__(self, total: int, tail: float) -> None:
        self.low_rank = _least_count(total, tail)
        self.high_rank = _least_count(total, 1.0 - tail)
        # at least one each, so the extremes are kept too
        self.low = _Extreme(max(self.low_rank, 1), smallest=True)
        self.high = _Extreme(total - self.high_rank + 1, smallest=False)

    def add(self, value: np.ndarray) -> None:
        flat = value.reshape(-1)
        self.low.add(flat)
        self.high.add(flat)

    def range(self) -> tuple[float, float]:
        low, high = self.low.values(), self.high.values()
        lo, hi = float(low.min()), float(high.max())
        if hi <= lo:
            return lo, hi
        first = _bin(low.max(), lo, hi) if self.low_rank > 0 else 0
        last = _bin(high.min(), lo, hi)
        edges = np.linspace(lo, hi, _HISTOGRAM_BINS + 1)
        return float(edges[first]), float(edges[min(last + 1, _HISTOGRAM_BINS)])


def _least_count(total: int, share: float) -> int:
    """The least count ``c`` in ``0..total`` with ``c / total >= share`` in float64, as a histogram's
    cumulative share is computed."""
    count = min(max(int(np.ceil(share * total)), 0), total)
    while count > 0 and (count - 1) / total >= share:
        count -= 1
    while count < total and count / total < share:
        count += 1
    return count


class _Extreme:
    """The ``k`` smallest (or largest) values added, in no order. Values are held until they fill ``2k``
    slots and only then cut back to ``k`` (one partition per ``k`` values taken in, not per image); each
    image only offers its values past the ``k``-th of the last cut."""

    def __init__(self, k: int, *, smallest: bool) -> None:
        self.k, self.smallest = k, smallest
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.bound: float | None = None

    def add(self, values: np.ndarray) -> None:
        if self.bound is not None:
            values = values[values < self.bound] if self.smallest else values[values > self.bound]
        if len(values):
            self.parts.append(values)
            self.size += len(values)
            if self.size > 2 * self.k:
                self._cut()

    def values(self) -> np.ndarray:
        if self.size > self.k:
            self._cut()
        return np.concatenate(self.parts) if self.parts else np.empty(0, np.float32)

    def _cut(self) -> None:
        both = np.concatenate(self.parts)
        kept = np.partition(both, self.k - 1)[: self.k] if self.smallest else np.partition(
            both, len(both) - self.k)[len(both) - self.k :]
        self.parts, self.size = [kept], self.k
        self.bound = float(kept.max() if self.smallest else kept.min())


def _bin(value: float, lo: float, hi: float) -> int:
    """The bin ``np.histogram(values, 2048, range=(lo, hi))`` puts float32 ``value`` in."""
    counts = np.histogram(np.array([value], np.float32), bins=_HISTOGRAM_BINS, range=(lo, hi))[0]
    return int(np.argmax(counts))


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
