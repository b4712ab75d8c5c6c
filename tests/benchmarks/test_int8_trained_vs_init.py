"""The pure parts of benchmarks/int8_trained_vs_init.py: the factory file it writes and its table."""

from __future__ import annotations

import argparse

import pytest

from edgekit.models import resolve


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("int8_trained_vs_init")


def test_factory_file_builds_the_registry_architecture_with_a_ten_way_head(script, tmp_path):
    spec = script.factory_file(tmp_path, "squeezenet1_1")
    handle = resolve(spec, input_shape=(1, 3, 64, 64))
    assert handle.name == "squeezenet1_1" and handle.family == "user"
    import torch

    with torch.no_grad():
        assert handle.module(torch.zeros(1, 3, 64, 64)).shape == (1, script.CLASSES)


def test_table_shows_both_weights_the_float_layers_and_an_error_as_its_reason(script):
    rows = [{"model": "m", "format": "tflite", "data": "digits", "fp32_heldout_top1": 0.985,
             "trained": {"cosine": 0.99951, "float_layers": "none", "heldout_top1": 0.9833},
             "init": {"error": "parity check failed (logits: cosine 0.72 < 0.95)"}}]
    (row,) = script.table_rows(rows)
    assert row[3:8] == ["0.9995", "none", "0.7200 (parity fails)", "", "98.50 / 98.33"]


@pytest.mark.zoo
def test_trained_weights_export_all_int8_and_keep_top1(script, tmp_path):
    # The benchmark's claim on one family, end to end: MobileNetV2 trained briefly on the digits exports to
    # int8 with no float layers in either format, near fp32 on both data kinds, with fp32's held-out top-1.
    args = argparse.Namespace(epochs=4, lr="", calib=16, samples=8, cache=str(tmp_path / "weights"))
    rows = script.measure("mobilenet_v2", args, tmp_path)
    assert len(rows) == 4 and rows[0]["fp32_heldout_top1"] >= script.MIN_TRAINED_TOP1
    for row in rows:
        assert row["trained"]["float_layers"] == "none", row
        assert row["trained"]["cosine"] >= 0.995, row
        if row["data"] == "digits":
            assert abs(row["trained"]["heldout_top1"] - row["fp32_heldout_top1"]) <= 0.01, row
