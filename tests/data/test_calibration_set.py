"""One calibration set per spec, the same for both formats, never the held-out digits eval scores."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data.calibration import CALIBRATION_SEED, calibration_set
from edgekit.data.digits import digits_images
from edgekit.errors import DataError
from edgekit.export.onnx_int8 import calibration_inputs
from edgekit.export.tflite_export import calibration_images
from edgekit.models import resolve


@pytest.fixture(scope="module")
def digits():
    return resolve("shufflenet_v2_digits")


def test_registry_data_calibrates_on_its_training_split_never_the_heldout(digits):
    found = calibration_set(None, digits)
    assert found.split == "digits-train" and "training split" in found.description and len(found.images) == 100
    heldout, _ = digits_images("heldout", (64, 64))
    train, _ = digits_images("train", (64, 64))
    from edgekit.data import preprocess

    heldout_set = {img.tobytes() for img in preprocess(heldout, digits.mean, digits.std, 3)}
    train_set = {img.tobytes() for img in preprocess(train, digits.mean, digits.std, 3)}
    for spec in (None, "digits", "digits:600"):
        images = calibration_set(spec, digits).images
        assert not any(img.tobytes() in heldout_set for img in images), spec
        assert all(img.tobytes() in train_set for img in images), spec


def test_both_formats_calibrate_on_the_same_images(digits):
    for spec in (None, "digits:30", 12):
        nchw, onnx_text = calibration_inputs(spec, digits)
        nhwc, tflite_text = calibration_images(spec, digits)
        np.testing.assert_array_equal(nchw.transpose(0, 2, 3, 1), nhwc)
        assert onnx_text == tflite_text


def test_bundled_crops_are_not_the_parity_checks(digits):
    from edgekit.data import bundled_images

    assert CALIBRATION_SEED != 0
    found = calibration_set(5, digits)
    assert found.split == "bundled" and "not the parity check's" in found.description
    parity = bundled_images(5, size=(64, 64), seed=0)
    assert not np.array_equal(bundled_images(5, size=(64, 64), seed=CALIBRATION_SEED), parity)


@pytest.mark.parametrize("spec", ["0", "digits:0", "digits:100000", "digits:x"])
def test_bad_counts_are_one_line(digits, spec):
    with pytest.raises(DataError):
        calibration_set(spec, digits)
