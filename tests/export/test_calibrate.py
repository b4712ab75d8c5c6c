"""Percentile calibration in one pass gives exactly the ranges of the 2048-bin histogram over all values."""

from __future__ import annotations

import numpy as np
import pytest
from test_tflite_quantize import images, small_graph

from edgekit.export.activation_ranges import HISTOGRAM_BINS
from edgekit.export.tflite.calibrate import _observer, calibrate_ranges
from edgekit.export.tflite.writer import write_tflite
from edgekit.runtimes.observer import LiteRTObserver


def histogram_percentile_ranges(graph, x: np.ndarray, percentile: float) -> dict[str, tuple[float, float]]:
    """The definition: every value of every image in one histogram over [min, max], its cumulative share
    cut at the tails (what calibrate_ranges computed with a second pass before), on the same activations; a
    signed tensor symmetric at the percentile of its magnitudes (one histogram of |x| over [0, max |x|])."""
    names = [n for n, t in graph.tensors.items() if t.dtype == "float32" and not t.is_constant]
    runs = list(_observer(graph, names).iterate(x, names))
    ranges = {}
    for name in names:
        values = np.concatenate([r[name].reshape(-1) for r in runs])
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            ranges[name] = (lo, hi)
            continue
        tail = 1.0 - percentile / 100.0
        if lo < 0 < hi:  # signed: symmetric at the percentile of |x|, on [0, max |x|]
            top = max(-lo, hi)
            cdf = np.cumsum(np.histogram(np.abs(values), bins=HISTOGRAM_BINS, range=(0, top))[0]) / values.size
            t = float(np.linspace(0, top, HISTOGRAM_BINS + 1)[min(int(np.searchsorted(cdf, 1.0 - tail)) + 1,
                                                                   HISTOGRAM_BINS)])
            ranges[name] = (max(-t, lo), min(t, hi))
            continue
        counts = np.histogram(values, bins=HISTOGRAM_BINS, range=(lo, hi))[0]
        edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
        cdf = np.cumsum(counts) / counts.sum()
        first = int(np.searchsorted(cdf, tail, side="left"))
        last = int(np.searchsorted(cdf, 1.0 - tail, side="left"))
        ranges[name] = (float(edges[first]), float(edges[min(last + 1, HISTOGRAM_BINS)]))
    return ranges


@pytest.mark.parametrize("percentile", [99.99, 99.9, 99.0, 90.0, 100.0])
def test_one_pass_percentile_is_the_histogram_percentile(percentile):
    g = small_graph()
    x = images(12, seed=3)
    got = calibrate_ranges(g, x, method="percentile", percentile=percentile)
    expected = histogram_percentile_ranges(g, x, percentile)
    assert got == expected
    # ReLU outputs hold many exact zeros: ties at the lower tail are counted as the histogram counts them.
    assert any(lo == 0.0 for lo, _ in got.values())


def test_every_tensor_is_observed_as_the_builtin_kernels_compute_it():
    # XNNPACK runs the probe; the builtin kernels with all tensors kept are the reference.
    g = small_graph()
    x = images(3, seed=5)
    names = [n for n, t in g.tensors.items() if t.dtype == "float32" and not t.is_constant]
    fast = list(_observer(g, names).iterate(x, names))
    reference = list(LiteRTObserver(write_tflite(g)).iterate(x, names))
    for got, expected in zip(fast, reference, strict=True):
        assert got.keys() == expected.keys()
        for name in names:
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5 * np.abs(expected[name]).max())
