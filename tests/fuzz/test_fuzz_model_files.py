"""Damaged model files never take edgekit down: byte-level and structure-aware mutants of a real int8
.tflite and .onnx go through ``check`` and the host benchmark, and each ends in an EdgekitError or a run.

Asserted: no signal death (the worker process would die with it), no traceback (an exception that is not
an EdgekitError), no hang (a per-mutant time limit and an overall timeout), nothing left behind (in the
work directory and edgekit's temporary names in TMPDIR). The default run takes a CI-sized sample per
format; ``-m fuzz`` runs 1,000 per format (``make fuzz``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.export.onnx_int8 import export_onnx_int8
from edgekit.export.tflite_export import export_tflite

HERE = Path(__file__).resolve().parent
MODEL = "shufflenet_v2_digits"
PER_MUTANT_LIMIT_S = 60.0  # a mutant that takes this long is a hang: a good file takes about 0.3 s


@pytest.fixture(scope="module")
def int8_files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("fuzz-sources")
    return {
        ".tflite": Path(export_tflite(MODEL, int8=True, output_dir=out, check=False).path),
        ".onnx": Path(export_onnx_int8(MODEL, output_dir=out, check=False).path),
    }


def fuzz(source: Path, count: int, seed: int, tmp_path: Path) -> dict:
    """Run ``count`` mutants through the worker in a fresh process with its own TMPDIR; return its summary."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    done = subprocess.run(
        [sys.executable, str(HERE / "fuzz_worker.py"), str(source), str(count), str(seed), str(tmp_path / "work")],
        capture_output=True, text=True, timeout=60 + count * 20, env=env,
    )
    assert done.returncode == 0, f"worker died (status {done.returncode}): {done.stderr[-2000:]}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    summary["tmp_left"] = sorted(p.name for p in tmpdir.iterdir() if p.name.startswith(("edgekit", ".edgekit")))
    return summary


def assert_survived(summary: dict, count: int) -> None:
    assert summary["tracebacks"] == [], summary["tracebacks"][:5]
    assert summary["errors"] + summary["ran"] == 2 * count  # check and bench for every mutant
    assert summary["errors"] > 0  # the mutants are damaged: most must be refused
    assert summary["slowest_s"] < PER_MUTANT_LIMIT_S, summary.get("slowest")
    assert summary["left_behind"] == [] and summary["tmp_left"] == []


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_ci_sample_of_mutants_never_crashes_or_tracebacks(int8_files, suffix, tmp_path):
    count = 40
    summary = fuzz(int8_files[suffix], count, seed=1, tmp_path=tmp_path)
    assert_survived(summary, count)


@pytest.mark.fuzz
@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_a_thousand_mutants_never_crash_or_traceback(int8_files, suffix, tmp_path):
    count = 1000
    summary = fuzz(int8_files[suffix], count, seed=2, tmp_path=tmp_path)
    print(f"{suffix}: {count} mutants, {summary['errors']} refused, {summary['ran']} ran, "
          f"slowest {summary['slowest_s']:.1f} s ({summary.get('slowest')})")
    assert_survived(summary, count)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_cli_refuses_damaged_files_in_one_line_with_exit_2(int8_files, suffix, tmp_path):
    """Through the real command: a truncated file and a structure-damaged one, for check and bench."""
    from mutants import mutants

    content = int8_files[suffix].read_bytes()
    damaged = {"truncated": content[: len(content) // 3]}
    damaged.update((label, data) for label, data in mutants(content, suffix, 4, seed=7) if label[5:] != "insert")
    edgekit = Path(sys.executable).with_name("edgekit")
    for label, data in list(damaged.items())[:3]:
        path = tmp_path / f"{label}{suffix}"
        path.write_bytes(data)
        for argv in (["check", str(path), "--samples", "2"],
                     ["bench", str(path), "--runs", "2", "--min-secs", "0", "--output", str(tmp_path / "b")]):
            done = subprocess.run([str(edgekit), *argv], capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                continue  # a mutant that still computes is allowed to pass
            # check: 2 for a file it refuses, 1 for a parity failure; bench: 2 for every bad model file
            assert done.returncode in ((1, 2) if argv[0] == "check" else (2,)), (label, argv[0], done.stderr[-500:])
            assert "Traceback" not in done.stderr, done.stderr[-2000:]
            errors = [line for line in done.stderr.splitlines() if line.startswith("edgekit: error:")]
            if done.returncode == 2:
                assert len(errors) == 1 and path.name in errors[0], done.stderr[-1000:]
