"""Parity metrics are pure functions: test them on arrays whose answers are known."""

import math

import numpy as np
import pytest

from edgekit.check import THRESHOLDS, compare_outputs, judge


def test_identical_outputs_are_exact():
    ref = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    out = compare_outputs("logits", ref, ref.copy())
    assert out.max_abs == 0 and out.mean_abs == 0
    assert math.isinf(out.sqnr_db)
    assert out.cosine == pytest.approx(1.0)
    assert out.top1_agreement == 1.0 and out.top5_agreement == 1.0
    assert judge([out], THRESHOLDS["fp32"]) == []


def test_known_error_gives_known_metrics():
    ref = np.zeros((2, 6), dtype=np.float32)
    ref[:, 0] = 10.0
    got = ref.copy()
    got[0, 1] = 1e-3
    out = compare_outputs("y", ref, got)
    assert out.max_abs == pytest.approx(1e-3)
    assert out.mean_abs == pytest.approx(1e-3 / 12)
    # signal 2 * 100, noise 1e-6 -> 10 log10(2e8)
    assert out.sqnr_db == pytest.approx(10 * math.log10(200 / 1e-6))
    assert out.top1_agreement == 1.0


def test_fp32_threshold_fails_on_large_error_and_names_output():
    ref = np.ones((1, 8), dtype=np.float32)
    got = ref + 1e-3
    failures = judge([compare_outputs("logits", ref, got)], THRESHOLDS["fp32"])
    assert len(failures) == 1 and "logits" in failures[0] and "max abs" in failures[0]


def test_top1_disagreement_detected():
    ref = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 0.0]])
    got = np.array([[1.0, 2.0, 3.0, 5.5, 5.0, 0.0]])
    out = compare_outputs("y", ref, got)
    assert out.top1_agreement == 0.0
    assert out.top5_agreement == 1.0  # same five classes, different order


def test_non_classification_outputs_have_no_topk():
    ref = np.ones((2, 3, 4, 4))
    out = compare_outputs("feat", ref, ref)
    assert out.top1_agreement is None and out.shape == (3, 4, 4)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        compare_outputs("y", np.ones((1, 5)), np.ones((1, 6)))


def test_cosine_of_opposite_vectors_is_minus_one():
    ref = np.array([[1.0, 2.0, 3.0]])
    assert compare_outputs("y", ref, -ref).cosine == pytest.approx(-1.0)


def test_fp32_limit_grows_with_large_logits_only():
    small = np.full((1, 8), 5.0)
    assert judge([compare_outputs("y", small, small + 2e-4)], THRESHOLDS["fp32"])  # 1e-4 applies
    large = np.full((1, 8), 50.0)
    assert judge([compare_outputs("y", large, large + 4e-4)], THRESHOLDS["fp32"]) == []  # 1e-5 * 50
    assert judge([compare_outputs("y", large, large + 6e-4)], THRESHOLDS["fp32"])
