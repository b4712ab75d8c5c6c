"""TFLite int8 on the trained digits reference: accuracy against real labels, and per-layer error."""

import math

import numpy as np
import pytest
from PIL import Image

from edgekit.data.digits import digits_images
from edgekit.errors import DataError
from edgekit.evaluate import evaluate
from edgekit.export.tflite_export import export_tflite
from edgekit.per_layer import per_layer_errors

# Measured: TFLite int8 99.50% top-1 against fp32 99.50%, top-1 agreement 100% (600 held-out digits).
MAX_TOP1_DROP_POINTS = 0.3
MIN_TOP1_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def digits_tflite_int8(tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite-int8")
    calib = root / "calib"
    calib.mkdir()
    images, _ = digits_images("train", (64, 64))
    for i in np.linspace(0, len(images) - 1, 100).round().astype(int):
        Image.fromarray(images[i]).save(calib / f"{i:04d}.png")
    return export_tflite("shufflenet_v2_digits", int8=True, calib=str(calib), output_dir=root / "out").path, calib


@pytest.mark.slow
def test_tflite_int8_accuracy_within_goal_of_fp32(digits_tflite_int8):
    report = evaluate("shufflenet_v2_digits", "digits", compare=digits_tflite_int8[0])
    assert report.top1_drop <= MAX_TOP1_DROP_POINTS, report.top1_drop
    assert report.top1_agreement >= MIN_TOP1_AGREEMENT, report.top1_agreement


@pytest.mark.slow
def test_tflite_per_layer_matches_every_int8_tensor(digits_tflite_int8):
    path, calib = digits_tflite_int8
    with pytest.raises(DataError, match="pass --calib DIR"):
        per_layer_errors(path, data="digits", samples=4)
    report = per_layer_errors(path, data="digits", samples=4, calib=str(calib))
    assert report.unmatched == 0 and report.layers[0].op == "input"
    assert report.layers[-1].tensor == "logits"
    assert all(math.isfinite(layer.sqnr_db) and layer.sqnr_db > 20 for layer in report.layers)
    # PAD and the folded shuffle's concatenations move bytes without requantizing.
    assert all(abs(layer.jump_db) < 0.5 for layer in report.layers if layer.op == "PAD")
    assert any(layer.flagged and layer.op == "DEPTHWISE_CONV_2D" for layer in report.layers)
