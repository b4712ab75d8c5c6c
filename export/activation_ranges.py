"""Activation ranges for int8 quantization from observed tensor values: one estimator for both formats.

Each backend observes its fp32 graph (``runtimes.observer``: ONNX Runtime over the ONNX graph, LiteRT over the
lowered TFLite graph) and hands the values, batch by batch, to ``estimate_ranges``; what it returns,
``{tensor: (lo, hi)}``, is all a backend maps to its int8 format. The estimator never sees a model, so both
formats clip the same values to the same range, and a batch of many images gives the ranges one image at a
time would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from math import isqrt

import numpy as np

from edgekit.errors import ExportError

RANGE_METHODS = ("minmax", "percentile", "mse")
#: Methods that need one pass over the images (``RangePass``); ``mse`` needs a second.
ONE_PASS_METHODS = ("minmax", "percentile")
DEFAULT_METHOD = "percentile"
#: Both formats' default percentile. Logit cosine to fp32 of ShuffleNetV2 1.0x, every step on and every layer
#: int8, 200 bundled crops (benchmarks/int8_quality.py ``+gptq``), ONNX / TFLite, measured on one tree: 99.995
#: 0.98365 / 0.98532, 99.996 0.98373 / 0.98508, 99.997 0.98424 / 0.98509, 99.998 0.98429 / 0.98495, 99.999
#: 0.98417 / 0.98387 (99.999 TFLite from the run before). Neighbouring percentiles move either format by up to
#: 0.0017 and not monotonically; 99.997 is the one value at which both formats beat what their own defaults
#: gave before (ONNX 0.9842 at 99.999, TFLite 0.9844 at 99.99).
DEFAULT_PERCENTILE = 99.997
HISTOGRAM_BINS = 2048

#: ``observe(names)`` runs the calibration images once and yields ``(images in the batch, {name: value})``
#: in image order, every value holding that batch's images along axis 0.
Observe = Callable[[Sequence[str]], Iterable[tuple[int, Mapping[str, np.ndarray]]]]


def estimate_ranges(
    observe: Observe,
    names: Sequence[str],
    images: int,
    *,
    method: str = DEFAULT_METHOD,
    percentile: float = DEFAULT_PERCENTILE,
) -> dict[str, tuple[float, float]]:
    """``(lo, hi)`` of every tensor in ``names`` over the ``images`` calibration images ``observe`` runs.

    ``method="minmax"`` takes the extremes over all images; ``"percentile"`` clips a tensor of one sign at
    ``100 - percentile`` and ``percentile`` percent of all its observed values, and a signed tensor at
    ``-t, t``, ``t`` the ``percentile`` of its magnitudes (2048-bin histograms, found in the same pass: see
    ``_Tails``), which trades saturation of rare outliers for finer steps; ``"mse"`` takes a second pass for
    its histograms (``mse_range``). Raises ``ExportError`` for an unknown method or a percentile outside
    (0, 100].
    """
    if method not in RANGE_METHODS:
        raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(RANGE_METHODS)}")
    names = list(names)
    first = RangePass(names, images, method="minmax" if method == "mse" else method, percentile=percentile)
    for count, values in observe(names):
        first.add(count, values)
    if method != "mse":
        return first.ranges()
    lo = {name: r[0] for name, r in first.ranges().items()}
    hi = {name: r[1] for name, r in first.ranges().items()}

    # mse needs every bin, and the bins need the final range: a second pass (all activations of a
    # calibration set would take gigabytes to keep).
    spread = [name for name in names if hi[name] > lo[name]]
    counts = {name: np.zeros(HISTOGRAM_BINS, dtype=np.int64) for name in names}
    if spread:
        for _, values in observe(spread):
            for name, value in values.items():
                counts[name] += np.histogram(value, bins=HISTOGRAM_BINS, range=(lo[name], hi[name]))[0]
    ranges = {}
    for name in names:
        if hi[name] <= lo[name]:
            ranges[name] = (lo[name], hi[name])
            continue
        ranges[name] = mse_range(counts[name], np.linspace(lo[name], hi[name], HISTOGRAM_BINS + 1))
    return ranges


class RangePass:
    """The one pass of ``estimate_ranges`` for ``minmax`` and ``percentile``, fed by whoever runs the images: a
    step that observes the graph anyway (GPTQ's statistics pass) hands each batch to ``add`` and reads
    ``ranges()`` after the last, so the ranges cost no run of their own.

    ``names``: the tensors to range; ``images``: how many calibration images the batches will hold in all.
    Raises ``ExportError`` for ``mse`` (two passes), an unknown method or a percentile outside (0, 100].
    """

    def __init__(self, names: Sequence[str], images: int, *, method: str = DEFAULT_METHOD,
                 percentile: float = DEFAULT_PERCENTILE) -> None:
        if method not in RANGE_METHODS:
            raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(RANGE_METHODS)}")
        if method not in ONE_PASS_METHODS:
            raise ExportError(f"calibration method {method!r} takes two passes; estimate_ranges runs them")
        if not 0 < percentile <= 100:
            raise ExportError(f"calibration percentile {percentile} is outside (0, 100]")
        self.names, self.images, self.method = list(names), images, method
        self.seen = 0  # images added so far
        self._tail = 1.0 - percentile / 100.0
        self._tails: dict[str, _Tails] = {}
        self._lo = {name: np.inf for name in self.names}
        self._hi = {name: -np.inf for name in self.names}

    def add(self, count: int, values: Mapping[str, np.ndarray]) -> None:
        """One batch of ``count`` images: ``{name: value}``, each value holding the batch along axis 0 (names
        this pass does not range are ignored)."""
        for name in self.names:
            value = values[name]
            if self.method == "percentile":  # its tails hold the extremes
                if name not in self._tails:
                    self._tails[name] = _Tails(self.images * value.size // count, self._tail)
                self._tails[name].add(value)
            else:
                self._lo[name] = min(self._lo[name], float(value.min()))
                self._hi[name] = max(self._hi[name], float(value.max()))
        self.seen += count

    def ranges(self) -> dict[str, tuple[float, float]]:
        """``(lo, hi)`` per name over the images added; raises ``ExportError`` before all of them were."""
        if self.seen != self.images:
            raise ExportError(f"ranges were asked for after {self.seen} of {self.images} calibration images")
        if self.method == "minmax":
            return {name: (self._lo[name], self._hi[name]) for name in self.names}
        return {name: self._tails[name].range() for name in self.names}


class _Tails:
    """The values of one tensor that decide its percentile range, gathered in the pass that finds its
    extremes, so percentile calibration needs no second run of the model.

    For a tensor of one sign the range is the one of the 2048-bin histogram over ``[lo, hi]``: its lower end
    is the left edge of the first bin whose cumulative share reaches ``tail``, its upper end the right edge
    of the first bin whose share reaches ``1 - tail``. Bins grow with the values, so those bins are the bins of the
    ``r``-th smallest value (``r`` the least count with ``r / total >= tail``, as the float division
    says) and of the ``s``-th smallest (``s / total >= 1 - tail``): the ``r`` smallest and the
    ``total - s + 1`` largest values are all that is kept. Each batch only adds values past the current
    ``r``-th smallest (or ``total - s + 1``-th largest), one comparison per value. A signed tensor takes
    ``s`` on ``|x|`` (``_symmetric``; ONNX Runtime's percentile rule): as wide on its short side as on its
    long one, which measured better than clipping each side (ShuffleNetV2 1.0x ONNX int8 at 99.999:
    logit cosine 0.98529 against 0.98460).
    """

    def __init__(self, total: int, tail: float) -> None:
        self.low_rank = _least_count(total, tail)
        self.high_rank = _least_count(total, 1.0 - tail)
        # at least one each, so the extremes are kept too; as many at the bottom as at the top, so the
        # largest magnitudes of a signed tensor are all kept (the most negative values or the largest)
        self.magnitudes = total - self.high_rank + 1
        self.low = _Extreme(max(self.low_rank, self.magnitudes, 1), smallest=True)
        self.high = _Extreme(self.magnitudes, smallest=False)

    def add(self, value: np.ndarray) -> None:
        flat = value.reshape(-1)
        self.low.add(flat)
        self.high.add(flat)

    def range(self) -> tuple[float, float]:
        low, high = self.low.values(), self.high.values()
        lo, hi = float(low.min()), float(high.max())
        if hi <= lo:
            return lo, hi
        if lo < 0 < hi:
            return self._symmetric(low, high, lo, hi)
        low = np.partition(low, self.low_rank - 1)[: self.low_rank] if self.low_rank > 0 else low
        first = _bin(low.max(), lo, hi) if self.low_rank > 0 else 0
        last = _bin(high.min(), lo, hi)
        edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
        return float(edges[first]), float(edges[min(last + 1, HISTOGRAM_BINS)])

    def _symmetric(self, low: np.ndarray, high: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
        """A signed tensor: ``(-t, t)`` clipped to ``[lo, hi]``, ``t`` the right edge of the bin of the
        2048-bin histogram of ``|x|`` over ``[0, max |x|]`` where its cumulative share reaches the percentile.
        The largest magnitudes are the most negative values kept at the bottom and the largest at the top
        (disjoint); where fewer than ``magnitudes`` are nonzero, all of them are here and the rest are 0."""
        magnitudes = np.concatenate([-low[low < 0], high[high > 0]])
        top = max(-lo, hi)
        if len(magnitudes) < self.magnitudes:
            value = 0.0
        else:
            rank = len(magnitudes) - self.magnitudes
            value = float(np.partition(magnitudes, rank)[rank])
        edges = np.linspace(0.0, top, HISTOGRAM_BINS + 1)
        t = float(edges[min(_bin(value, 0.0, top) + 1, HISTOGRAM_BINS)])
        return max(-t, lo), min(t, hi)


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
    slots and only then cut back to ``k`` (one partition per ``k`` values taken in, not per batch); each
    batch only offers its values past the ``k``-th of the last cut."""

    def __init__(self, k: int, *, smallest: bool) -> None:
        self.k, self.smallest = k, smallest
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.bound: float | None = None

    def add(self, values: np.ndarray) -> None:
        head = max(4 * self.k, isqrt(len(values) * self.k))
        if self.bound is None and len(values) > 2 * head:
            # Nothing to filter the first values with yet: a cut of a slice gives a bound, so the rest is
            # filtered instead of partitioned whole (ResNet-18, 16 images of 802,816 values per run: 16 -> 2 s)
            self.add(values[:head])
            values = values[head:]
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
    counts = np.histogram(np.array([value], np.float32), bins=HISTOGRAM_BINS, range=(lo, hi))[0]
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
