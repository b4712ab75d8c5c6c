"""`--json` stdout is exactly one JSON document: what ONNX Runtime, LiteRT and other native code print while
edgekit works goes to stderr, and ONNX Runtime's pre-processing advice is not shown at all."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EDGEKIT = str(Path(sys.executable).with_name("edgekit"))


def run_json(*args: str) -> tuple[object, str]:
    """Run the installed console script as a user would; returns (the one JSON document on stdout, stderr)."""
    proc = subprocess.run([EDGEKIT, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)  # raises on anything before or after the one document
    assert "pre-processing" not in proc.stderr, proc.stderr
    return document, proc.stderr


@pytest.fixture(scope="module")
def int8_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("json")
    result, stderr = run_json("export", "--model", "shufflenet_v2_digits", "--format", "onnx", "--int8", "--json",
                              "--output", str(out))
    return result, stderr, out


def test_int8_onnx_export_prints_one_json_document(int8_onnx):
    result, stderr, out = int8_onnx
    assert result["precision"] == "int8" and result["parity"]["passed"]
    assert Path(result["path"]).parent == out
    assert "edgekit: " in stderr  # progress goes to stderr (ONNX Runtime's calibrator, which printed, is gone)


def test_check_json_is_one_document(int8_onnx):
    result, _, _ = int8_onnx
    report, _ = run_json("check", result["path"], "--json")
    assert report["passed"] and report["precision"] == "int8"


def test_host_bench_json_is_one_document(int8_onnx, tmp_path):
    result, _, _ = int8_onnx
    report, _ = run_json("bench", result["path"], "--target", "host", "--json", "--runs", "3", "--min-secs", "0",
                         "--output", str(tmp_path / "bench"))
    assert [run["status"] for run in report["runs"]] == ["ok"]


def test_models_json_is_one_document():
    models, _ = run_json("models", "--json")
    assert any(m["name"] == "shufflenet_v2_digits" for m in models)


def test_stdout_to_stderr_catches_python_native_and_child_writes(tmp_path):
    script = tmp_path / "noisy.py"
    script.write_text(textwrap.dedent(
        """
        import ctypes, os, subprocess, sys
        from edgekit.stdout_redirect import stdout_to_stderr

        print("result before")
        with stdout_to_stderr():
            print("python print")
            sys.__stdout__.write("python __stdout__\\n")
            os.write(1, b"fd 1 write\\n")
            ctypes.CDLL(None).printf(b"buffered C printf\\n")
            subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
        print("result after")
        """
    ))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["result before", "result after"]
    for line in ("python print", "python __stdout__", "fd 1 write", "buffered C printf", "child process"):
        assert line in proc.stderr.splitlines()


def test_stdout_to_stderr_restores_stdout_after_an_error(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(textwrap.dedent(
        """
        import os
        from edgekit.stdout_redirect import stdout_to_stderr

        try:
            with stdout_to_stderr():
                os.write(1, b"inside\\n")
                raise ValueError("boom")
        except ValueError:
            pass
        print("after")
        """
    ))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert (proc.stdout, proc.stderr) == ("after\n", "inside\n")
