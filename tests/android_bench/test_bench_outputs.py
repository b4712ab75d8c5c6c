"""write_bench_outputs: every file appears whole or not at all, also when the disk fills up mid-way.

A full disk is simulated for real, without patching: the writer runs in a child process whose file size
limit (RLIMIT_FSIZE) lets the small files through and makes writing bench.html fail with EFBIG, as a full
partition makes it fail with ENOSPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgekit.android_bench.bench import write_bench_outputs
from edgekit.android_bench.results import BenchConfig, BenchReport, BenchRun, DeviceFacts, LatencyStats

FILL_THE_DISK = r"""
import json, resource, signal, sys
sys.path.insert(0, sys.argv[3])
from test_bench_outputs import report
from edgekit.android_bench.bench import write_bench_outputs
from edgekit.errors import OutputError

limit = int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
data = report(mean_ms=99.0)
try:
    write_bench_outputs(data, sys.argv[1])
except OutputError as exc:
    print(json.dumps({"error": str(exc), "raw_text": data.runs[0].raw_text, "raw_output": data.runs[0].raw_output}))
"""


def report(mean_ms: float = 12.5) -> BenchReport:
    run = BenchRun(device=DeviceFacts(target="adb:SIM", abi="arm64-v8a"), model_file="m.tflite",
                   model_sha256="0" * 64, tool="benchmark_model", tool_version="2.16",
                   config=BenchConfig(threads=1, accelerator="cpu", runs=10, min_secs=1, warmup_runs=2),
                   latency=LatencyStats(count=10, mean_ms=mean_ms), raw_text="Inference timings in us\n")
    return BenchReport(runs=[run], model_file="m.tflite")


def test_full_disk_leaves_the_previous_files_whole_and_no_temporary_ones(tmp_path):
    out = tmp_path / "bench"
    paths = write_bench_outputs(report(), out)
    before = {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    sizes = {kind: path.stat().st_size for kind, path in paths.items()}
    assert sizes["html"] > max(sizes["json"], sizes["markdown"])
    limit = sizes["html"] - 1  # room for everything but bench.html
    child = subprocess.run([sys.executable, "-c", FILL_THE_DISK, str(out), str(limit), str(Path(__file__).parent)],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    failed = json.loads(child.stdout)
    assert failed["error"].startswith(f"cannot write {out / 'bench.html'}") and "\n" not in failed["error"]
    after = {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert after == before  # nothing half-written, nothing replaced, no temporary file left
    assert json.loads((out / "bench.json").read_text())["runs"][0]["latency"]["mean_ms"] == 12.5
    # the report is as it was, so the caller can write it elsewhere
    assert (failed["raw_text"], failed["raw_output"]) == ("Inference timings in us\n", None)
