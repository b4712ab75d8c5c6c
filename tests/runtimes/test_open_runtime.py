"""open_runtime's dispatch, its one-line errors for bad model files, and runtime_versions."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import tflite_builder as tb
from runtime_models import INPUT_SHAPE, random_input, torch_reference

from edgekit.errors import ModelFileError
from edgekit.runtimes import SUPPORTED_SUFFIXES, open_runtime, runtime_versions
from edgekit.runtimes.litert_runtime import LiteRTRuntime
from edgekit.runtimes.onnx_runtime import OnnxRuntime
from edgekit.runtimes.torch_runtime import TorchRuntime


@pytest.fixture(scope="module")
def tflite_bytes() -> bytes:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    return tb.conv2d_float(weight, np.zeros(4, np.float32), height=8, width=8)


def test_module_opens_torch(cnn):
    with open_runtime(cnn, threads=2) as rt:
        assert isinstance(rt, TorchRuntime) and rt.threads == 2
        x = random_input()
        np.testing.assert_allclose(rt.run(x)[0], torch_reference(cnn, x), atol=0, rtol=0)


def test_handle_opens_torch_with_its_input_shape(cnn):
    handle = SimpleNamespace(name="small", module=cnn, input_shape=INPUT_SHAPE)
    with open_runtime(handle) as rt:
        assert isinstance(rt, TorchRuntime)
        assert rt.inputs[0].shape == (None, 3, 16, 16)


def test_suffix_picks_engine(cnn_onnx, tmp_path, tflite_bytes):
    with open_runtime(cnn_onnx, optimization="disable") as rt:
        assert isinstance(rt, OnnxRuntime) and rt.settings["optimization"] == "disable"
    upper = tmp_path / "MODEL.TFLITE"
    upper.write_bytes(tflite_bytes)
    with open_runtime(str(upper), threads=2, xnnpack=False) as rt:
        assert isinstance(rt, LiteRTRuntime) and rt.settings == {"threads": 2, "xnnpack": False}


def _assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("name", ["model.pt", "model.pb", "model"])
def test_unknown_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"whatever")
    with pytest.raises(ModelFileError) as info:
        open_runtime(path)
    _assert_one_line(info, name, *SUPPORTED_SUFFIXES)


def test_not_a_model(tmp_path):
    with pytest.raises(ModelFileError) as info:
        open_runtime(42)
    _assert_one_line(info, "int", "torch.nn.Module")


def _corrupt_files(onnx_bytes: bytes, tflite_bytes: bytes) -> dict[str, bytes | None]:
    """Name -> content; None means the file is not created."""
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return {
        "truncated.onnx": onnx_bytes[: len(onnx_bytes) // 2],
        "tail_cut.onnx": onnx_bytes[:-16],
        "random.onnx": noise,
        "empty.onnx": b"",
        "missing.onnx": None,
        "truncated.tflite": tflite_bytes[: len(tflite_bytes) // 2],
        "header_only.tflite": tflite_bytes[:24],
        "random.tflite": noise,
        "empty.tflite": b"",
        "missing.tflite": None,
    }


CORRUPT = list(_corrupt_files(b"", b""))


@pytest.mark.parametrize("name", CORRUPT)
def test_bad_model_file_is_one_line_model_file_error(name, tmp_path, cnn_onnx, tflite_bytes):
    content = _corrupt_files(cnn_onnx.read_bytes(), tflite_bytes)[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        open_runtime(path)
    _assert_one_line(info, str(path))
    assert "re-export" in str(info.value) or "check the path" in str(info.value)


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_directory_is_not_a_model(tmp_path, suffix):
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    with pytest.raises(ModelFileError) as info:
        open_runtime(folder)
    _assert_one_line(info, str(folder), "not a file")


def test_runtime_versions():
    versions = runtime_versions()
    assert set(versions) == {"torch", "onnxruntime", "ai-edge-litert", "numpy"}
    assert versions["numpy"] == np.__version__
    assert versions["onnxruntime"] == __import__("onnxruntime").__version__
    assert all(isinstance(v, str) and v for v in versions.values())


def test_importing_runtimes_loads_no_engine():
    # Only what edgekit.runtimes itself pulls in counts, not whatever the edgekit package imports.
    code = (
        "import sys, edgekit; before = set(sys.modules); "
        "import edgekit.runtimes as r; r.runtime_versions(); "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'ai_edge_litert') if m in new))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"
