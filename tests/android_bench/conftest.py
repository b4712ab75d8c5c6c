"""Session fixtures for the benchmark tests: small model files, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_models import tiny_onnx, tiny_onnx_int8, tiny_tflite

OUTPUTS = Path(__file__).with_name("outputs")


def recorded_output(name: str) -> str:
    """A recorded tool output without the fixture's leading '# source:' line."""
    lines = (OUTPUTS / name).read_text().splitlines(keepends=True)
    return "".join(lines[1:] if lines and lines[0].startswith("# source:") else lines)


@pytest.fixture(scope="session")
def bench_models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-models")


@pytest.fixture(scope="session")
def tiny_onnx_file(bench_models_dir) -> Path:
    return tiny_onnx(bench_models_dir / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_onnx_int8_file(tiny_onnx_file, bench_models_dir) -> Path:
    return tiny_onnx_int8(tiny_onnx_file, bench_models_dir / "tiny_int8.onnx")


@pytest.fixture(scope="session")
def tiny_tflite_file(bench_models_dir) -> Path:
    return tiny_tflite(bench_models_dir / "tiny.tflite")
