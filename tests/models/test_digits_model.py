"""The trained reference: small enough to ship, its recorded accuracy true, loaded by default."""

import pytest
import torch

from edgekit.evaluate import evaluate
from edgekit.models import create, resolve
from edgekit.models.digits import DIGITS_WEIGHTS
from edgekit.models.registry import model_info, model_metadata


def test_weights_ship_small_with_metadata_matching_the_registry():
    assert DIGITS_WEIGHTS.stat().st_size < 1_000_000
    saved = torch.load(DIGITS_WEIGHTS, map_location="cpu", weights_only=True)
    meta = model_metadata("shufflenet_v2_digits")
    assert saved["metadata"]["heldout_top1"] == meta["heldout_top1"]
    assert saved["metadata"]["mean"] == list(meta["mean"]) and saved["metadata"]["std"] == list(meta["std"])


def test_registered_with_trained_weights_by_default():
    handle = resolve("shufflenet_v2_digits")
    assert handle.weights_source == "bundled:shufflenet_v2_digits.pt"
    assert handle.input_shape == (1, 3, 64, 64)
    assert create("shufflenet_v2_digits").fc.out_features == 10
    info = model_info("shufflenet_v2_digits")
    assert info.params < 250_000


@pytest.mark.slow
def test_recorded_heldout_accuracy_is_what_the_model_scores():
    report = evaluate("shufflenet_v2_digits", "digits")
    assert report.images == 600
    assert round(100 * report.results[0].top1, 2) == model_metadata("shufflenet_v2_digits")["heldout_top1"]
