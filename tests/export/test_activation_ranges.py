"""The activation range estimator both int8 backends share: the ranges TFLite had before it moved here (all
but the percentile ranges of signed tensors, now symmetric on |x|), the same ranges whatever the batching, the
histogram definitions, and its refusals."""

import numpy as np
import pytest

from edgekit.errors import ExportError
from edgekit.export.activation_ranges import HISTOGRAM_BINS, estimate_ranges

SHAPES = {"normal": (1, 6, 6, 8), "relu": (1, 6, 6, 8), "heavy": (1, 4, 4, 16), "ties": (1, 3, 3, 4)}
METHODS = [("minmax", 100.0), ("percentile", 99.9), ("percentile", 99.0), ("percentile", 90.0), ("mse", 100.0)]

# What export/tflite/calibrate.py's calibrate_ranges returned for these values (one image per run) before its
# estimator moved to export/activation_ranges.py, recorded as float.hex.
# Percentile ranges of signed tensors (all but "relu") were per-side tails then; they are symmetric on |x| now.
RECORDED = {"minmax": {"heavy": ("-0x1.b949240000000p+6", "0x1.40c7740000000p+7"),
                       "normal": ("-0x1.bf32460000000p+1", "0x1.d103e20000000p+1"),
                       "relu": ("0x0.0p+0", "0x1.03f15c0000000p+2"),
                       "ties": ("-0x1.4000000000000p+1", "0x1.8000000000000p+1")},
            "mse": {"heavy": ("-0x1.b4df730000000p+6", "0x1.3d92423333333p+7"),
                    "normal": ("-0x1.bab9736147ae1p+1", "0x1.cc5d71a8f5c29p+1"),
                    "relu": ("0x0.0p+0", "0x1.03f15c0000000p+2"),
                    "ties": ("-0x1.4000000000000p+1", "0x1.8000000000000p+1")},
            "percentile 90.0": {"heavy": ("-0x1.6003c5a800000p+2", "0x1.6f0fb25000000p+2"),
                                "normal": ("-0x1.4a7f11c600000p+0", "0x1.427bb25c00000p+0"),
                                "relu": ("0x0.0p+0", "0x1.3ac6456800000p+0"),
                                "ties": ("-0x1.8040000000000p+0", "0x1.0080000000000p+0")},
            "percentile 99.0": {"heavy": ("-0x1.627c1c5e00000p+4", "0x1.5babfb6a00000p+4"),
                                "normal": ("-0x1.2adf77bf00000p+1", "0x1.2c36194600000p+1"),
                                "relu": ("0x0.0p+0", "0x1.30dfd42700000p+1"),
                                "ties": ("-0x1.0010000000000p+1", "0x1.4010000000000p+1")},
            "percentile 99.9": {"heavy": ("-0x1.9498eab400000p+5", "0x1.5f48bdc880000p+6"),
                                "normal": ("-0x1.7b7e410800000p+1", "0x1.7e9cfda300000p+1"),
                                "relu": ("0x0.0p+0", "0x1.98f3f77d00000p+1"),
                                "ties": ("-0x1.4000000000000p+1", "0x1.8000000000000p+1")}}


def per_image_values(count: int = 12, seed: int = 7) -> list[dict[str, np.ndarray]]:
    """Per image, as the LiteRT observer yields them: a Gaussian, a ReLU output (ties at 0), heavy tails,
    and a tensor of few distinct values."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        values = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
        values["relu"] = np.maximum(values["relu"], 0)
        values["heavy"] = (rng.standard_t(2, SHAPES["heavy"]) * 3).astype(np.float32)
        values["ties"] = np.round(values["ties"] * 2) / 2
        images.append(values)
    return images


def in_batches(images: list[dict[str, np.ndarray]], batch: int):
    """``observe`` over the images joined ``batch`` at a time along axis 0 (the ONNX observer's runs)."""

    def observe(names):
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            yield len(chunk), {n: np.concatenate([image[n] for image in chunk]) for n in names}

    return observe


def key(method: str, percentile: float) -> str:
    return f"percentile {percentile}" if method == "percentile" else method


@pytest.mark.parametrize(("method", "percentile"), METHODS)
def test_ranges_are_those_tflite_calibration_computed_before_the_move(method, percentile):
    images = per_image_values()
    got = estimate_ranges(in_batches(images, 1), list(SHAPES), len(images), method=method, percentile=percentile)
    kept = ["relu"] if method == "percentile" else list(SHAPES)
    assert {n: (got[n][0].hex(), got[n][1].hex()) for n in kept} == {n: RECORDED[key(method, percentile)][n]
                                                                      for n in kept}


@pytest.mark.parametrize(("method", "percentile"), METHODS)
@pytest.mark.parametrize("batch", [5, 12])
def test_batches_give_the_ranges_of_one_image_at_a_time(method, percentile, batch):
    images = per_image_values()
    alone = estimate_ranges(in_batches(images, 1), list(SHAPES), 12, method=method, percentile=percentile)
    batched = estimate_ranges(in_batches(images, batch), list(SHAPES), 12, method=method, percentile=percentile)
    assert batched == alone


def histogram_cut(values: np.ndarray, lo: float, hi: float, share: float) -> int:
    """The bin of a 2048-bin histogram of ``values`` over ``[lo, hi]`` where the cumulative share reaches
    ``share``."""
    cdf = np.cumsum(np.histogram(values, bins=HISTOGRAM_BINS, range=(lo, hi))[0]) / values.size
    return int(np.searchsorted(cdf, share))


def test_percentile_of_a_one_sided_tensor_is_the_histogram_percentile_of_all_values():
    images = per_image_values(count=40, seed=3)
    got = estimate_ranges(in_batches(images, 16), ["relu"], 40, method="percentile", percentile=99.0)["relu"]
    values = np.concatenate([image["relu"].ravel() for image in images])
    lo, hi = float(values.min()), float(values.max())
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    assert lo == 0.0 and got == (0.0, float(edges[histogram_cut(values, lo, hi, 0.99) + 1]))
    assert got[1] < hi


@pytest.mark.parametrize("percentile", [99.99, 99.0, 90.0])
def test_percentile_of_a_signed_tensor_is_symmetric_at_the_percentile_of_its_magnitudes(percentile):
    images = per_image_values(count=40, seed=3)
    got = estimate_ranges(in_batches(images, 16), ["heavy"], 40, method="percentile", percentile=percentile)["heavy"]
    values = np.concatenate([image["heavy"].ravel() for image in images])
    lo, hi = float(values.min()), float(values.max())
    top = max(-lo, hi)
    t = float(np.linspace(0, top, HISTOGRAM_BINS + 1)[histogram_cut(np.abs(values), 0, top, percentile / 100) + 1])
    assert got == (max(-t, lo), min(t, hi))
    assert lo <= got[0] < 0 < got[1] <= hi


def test_constant_tensor_keeps_its_value():
    images = [{"c": np.full((1, 4), 2.5, np.float32)} for _ in range(3)]
    for method in ("minmax", "percentile", "mse"):
        assert estimate_ranges(in_batches(images, 2), ["c"], 3, method=method) == {"c": (2.5, 2.5)}


def test_refusals():
    observe = in_batches(per_image_values(2), 1)
    with pytest.raises(ExportError, match="unknown calibration method 'entropy'; choose one of minmax"):
        estimate_ranges(observe, ["normal"], 2, method="entropy")
    with pytest.raises(ExportError, match=r"percentile 0 is outside \(0, 100\]"):
        estimate_ranges(observe, ["normal"], 2, percentile=0)


def test_a_range_pass_fed_in_any_batches_gives_the_estimator_ranges():
    from edgekit.export.activation_ranges import RangePass

    values = np.random.default_rng(4).normal(0.5, 2.0, (30, 4, 5)).astype(np.float32)
    for method in ("minmax", "percentile"):
        expected = estimate_ranges(lambda names: [(30, {"t": values})], ["t"], 30, method=method, percentile=99.0)
        fed = RangePass(["t"], 30, method=method, percentile=99.0)
        for start, stop in ((0, 7), (7, 8), (8, 30)):
            with pytest.raises(ExportError, match="after"):
                fed.ranges()
            fed.add(stop - start, {"t": values[start:stop], "other": values[start:stop]})
        assert fed.ranges() == expected
    with pytest.raises(ExportError, match="two passes"):
        RangePass(["t"], 30, method="mse")
