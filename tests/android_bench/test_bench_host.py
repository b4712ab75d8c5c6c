"""The orchestrator, the host target, the device runner script, result files, the CLI, and binaries."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.android_bench import make_targets
from edgekit.android_bench.bench import big_core_mask, run_benchmark, run_benchmarks, write_bench_outputs
from edgekit.android_bench.binaries import (
    BinaryNotFoundError,
    download_benchmark_binary,
    resolve_benchmark_binary,
)
from edgekit.android_bench.host import RUNNER, HostTarget, host_cores, read_proc_status
from edgekit.android_bench.parsers import parse_runner_output
from edgekit.android_bench.results import BenchConfig, BenchReport, BenchRun, CoreInfo, DeviceFacts, LatencyStats
from edgekit.android_bench.target import Target
from edgekit.cli import main
from edgekit.errors import DownloadError, EdgekitError, ModelFileError
from edgekit.report import bench_device_rows

FAST = {"runs": 3, "min_secs": 0.0, "warmup": 1}


# --- big-core pinning ----------------------------------------------------------------------------------

def _cores(*khz):
    return [CoreInfo(i, k) for i, k in enumerate(khz)]


def test_big_core_mask_picks_the_fast_cluster():
    phone = _cores(1_800_000, 1_800_000, 1_800_000, 1_800_000, 2_400_000, 2_400_000, 2_400_000, 2_400_000)
    assert big_core_mask(phone, 1) == "f0"
    assert big_core_mask(phone, 4) == "f0"
    assert big_core_mask(phone, 6) == "f3"  # big cluster plus the two lowest-numbered little cores
    assert big_core_mask(phone, 8) is None  # every core: no pinning


def test_big_core_mask_prime_core():
    tri = _cores(1_700_000, 1_700_000, 1_700_000, 1_700_000, 2_400_000, 2_400_000, 2_400_000, 3_000_000)
    assert big_core_mask(tri, 1) == "80"
    assert big_core_mask(tri, 2) == "90"  # prime core, then the lowest-numbered 2.4 GHz core


def test_big_core_mask_nothing_to_pick():
    assert big_core_mask(_cores(2_000_000, 2_000_000), 1) is None  # all equal
    assert big_core_mask(_cores(None, None, None), 1) is None  # frequencies unknown
    assert big_core_mask(_cores(1_000_000, None, 2_000_000), 1) is None  # partly unknown: do not guess
    assert big_core_mask([], 1) is None


# --- host target --------------------------------------------------------------------------------------

def test_host_onnx_run_has_latency_memory_and_op_profile(tiny_onnx_file):
    report = run_benchmark(tiny_onnx_file, HostTarget(), threads=[1, 2], op_profile=True, **FAST)
    assert [(r.config.accelerator, r.config.threads, r.status) for r in report.runs] == [
        ("cpu", 1, "ok"), ("cpu", 2, "ok")]
    run = report.runs[0]
    lat = run.latency
    assert lat.count >= 3 and lat.mean_ms > 0 and lat.init_ms > 0 and lat.first_ms > 0 and lat.warmup_ms > 0
    assert lat.min_ms <= lat.median_ms <= lat.p90_ms <= lat.max_ms
    assert run.memory.overall_mb > 10  # peak RSS of a Python process holding ORT
    assert run.tool_version.startswith("onnxruntime ")
    assert len(run.model_sha256) == 64 and run.device.abi
    assert {r.op_type for r in run.op_profile} >= {"Conv", "Gemm"}  # ORT fuses the ReLUs into Conv
    assert run.op_type_summary[0].avg_ms >= run.op_type_summary[-1].avg_ms
    assert json.loads(run.raw_text)["times_ms"]


def test_host_run_records_the_spread_reports_draw(tiny_onnx_file):
    lat = run_benchmark(tiny_onnx_file, HostTarget(), runs=20, min_secs=0.0, warmup=1).runs[0].latency
    assert lat.min_ms <= lat.p10_ms <= lat.median_ms <= lat.p90_ms <= lat.max_ms
    assert lat.p10_ms < lat.p90_ms  # 20 timings of a real model are never all equal


def test_host_facts_describe_the_usable_cores_on_this_machine():
    facts = HostTarget().facts()
    assert [c.index for c in facts.cores] == sorted(os.sched_getaffinity(0))
    assert all(c.max_khz or c.clock_khz for c in facts.cores) == _any_frequency_source()
    headers, rows = bench_device_rows(BenchReport(runs=[BenchRun(
        device=facts, model_file="m.onnx", model_sha256="", tool="host", tool_version=None,
        config=BenchConfig(1, "cpu", 1, 0.0, 0))], model_file="m.onnx"))
    cores = rows[0][headers.index("cores")]
    assert cores.split()[0] == str(len(os.sched_getaffinity(0)))
    assert ("GHz" in cores) == _any_frequency_source(), cores


def _any_frequency_source() -> bool:
    """Whether this machine shows a core frequency: cpufreq's maximum, or /proc/cpuinfo's "cpu MHz" (x86)."""
    cpu = next(iter(os.sched_getaffinity(0)))
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return Path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq").exists() or "cpu MHz" in cpuinfo


def test_host_cores_prefer_cpufreq_maxima_and_fall_back_to_the_cpuinfo_clock(tmp_path):
    usable = sorted(os.sched_getaffinity(0))
    sysfs = tmp_path / "cpu"
    for index in usable:
        (sysfs / f"cpu{index}" / "cpufreq").mkdir(parents=True)
        (sysfs / f"cpu{index}" / "cpufreq" / "cpuinfo_max_freq").write_text(f"{2_000_000 + index}\n")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("".join(f"processor\t: {i}\nmodel name\t: test\ncpu MHz\t\t: 2596.126\n\n" for i in usable))
    assert host_cores(str(sysfs), str(cpuinfo)) == [CoreInfo(i, 2_000_000 + i) for i in usable]
    no_cpufreq = host_cores(str(tmp_path / "none"), str(cpuinfo))
    assert no_cpufreq == [CoreInfo(i, None, clock_khz=2_596_126) for i in usable]
    assert big_core_mask(no_cpufreq, 1) is None  # a clock that moves with load picks no cores
    arm = tmp_path / "cpuinfo-arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd08\n")
    assert host_cores(str(tmp_path / "none"), str(arm)) == [CoreInfo(i) for i in usable]


def test_host_tflite_accelerators(tiny_tflite_file):
    report = run_benchmark(tiny_tflite_file, HostTarget(), accelerators=["xnnpack", "cpu", "gpu"], **FAST)
    status = {r.config.accelerator: r.status for r in report.runs}
    assert status == {"xnnpack": "ok", "cpu": "ok", "gpu": "failed"}
    assert "gpu" in report.runs[2].error and "not available" in report.runs[2].error
    assert report.runs[0].tool_version.startswith("litert ")


def test_host_default_accelerator_is_the_tools_default(tiny_tflite_file):
    report = run_benchmark(tiny_tflite_file, HostTarget(), **FAST)
    assert [r.config.accelerator for r in report.runs] == ["xnnpack"]


def test_host_min_secs_and_timeout(tiny_onnx_file):
    run = run_benchmark(tiny_onnx_file, HostTarget(), runs=1, min_secs=0.3, warmup=0).runs[0]
    assert run.latency.count > 1 and run.latency.count * run.latency.mean_ms >= 250
    partial = run_benchmark(tiny_onnx_file, HostTarget(), runs=10**9, min_secs=0, warmup=0, timeout=0.2).runs[0]
    assert partial.status == "partial" and "timeout" in partial.error and partial.latency.count >= 1


def test_host_missing_model_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelFileError, match="host: prepare"):
        run_benchmark(tmp_path / "missing.onnx", HostTarget())


def test_read_proc_status_units():
    values = read_proc_status()
    assert 5 < values["VmRSS"] <= values["VmHWM"] < 1e6  # MiB


# --- orchestrator with a scripted target ---------------------------------------------------------------

class ScriptedTarget(Target):
    """A target whose runs succeed or raise as scripted, recording the lifecycle calls."""

    def __init__(self, fail_on=(), fail_prepare=False, name="adb:FAKE", emulated=False):
        self.name = name
        self.calls: list[str] = []
        self.fail_on = set(fail_on)
        self.fail_prepare = fail_prepare
        self.emulated = emulated
        self.temp = 30.0

    def facts(self):
        self.calls.append("facts")
        return DeviceFacts(target=self.name, abi="arm64-v8a", emulated=self.emulated,
                           cores=[CoreInfo(i, 1_800_000 if i < 4 else 2_800_000) for i in range(8)])

    def prepare(self, model):
        self.calls.append("prepare")
        if self.fail_prepare:
            raise EdgekitError(f"{self.name}: push: no space left on device")

    def accelerators(self):
        return ["cpu", "gpu"]

    def temperature_c(self):
        self.temp += 1.5
        return self.temp

    def run(self, config, *, op_profile=False, timeout_s=None):
        self.calls.append(f"run {config.accelerator}/{config.threads} mask={config.cpu_mask}")
        if (config.accelerator, config.threads) in self.fail_on:
            raise EdgekitError(f"{self.name}: run: benchmark_model crashed (signal 11)")
        return BenchRun(device=self.facts(), model_file="m.tflite", model_sha256="0" * 64,
                        tool="benchmark_model", tool_version=None, config=config,
                        latency=LatencyStats(count=config.runs, mean_ms=10.0 / config.threads),
                        raw_text=f"count={config.runs}\n")

    def cleanup(self):
        self.calls.append("cleanup")


def test_failure_mid_run_keeps_partial_results_and_cleans_up():
    target = ScriptedTarget(fail_on={("gpu", 1)})
    slept = []
    report = run_benchmark("m.tflite", target, threads=[1, 2], accelerators=["cpu", "gpu"], cooldown=2.5,
                           sleep=slept.append, **FAST)
    assert [(r.config.accelerator, r.config.threads, r.status) for r in report.runs] == [
        ("cpu", 1, "ok"), ("cpu", 2, "ok"), ("gpu", 1, "failed"), ("gpu", 2, "ok")]
    assert "signal 11" in report.runs[2].error and report.runs[2].latency is None
    assert slept == [2.5, 2.5, 2.5]  # between configurations, not before the first
    assert [r.temperature_c for r in report.runs] == [31.5, 33.0, 34.5, 36.0]
    assert target.calls[0] == "facts" and target.calls[-1] == "cleanup"
    assert "run cpu/1 mask=f0" in target.calls  # the four 2.8 GHz cores


def test_prepare_failure_raises_after_cleanup():
    target = ScriptedTarget(fail_prepare=True)
    with pytest.raises(EdgekitError, match="no space left"):
        run_benchmark("m.tflite", target, **FAST)
    assert target.calls[-1] == "cleanup"


def test_bad_arguments():
    with pytest.raises(EdgekitError, match="threads"):
        run_benchmark("m.tflite", ScriptedTarget(), threads=[0])
    with pytest.raises(EdgekitError, match="runs"):
        run_benchmark("m.tflite", ScriptedTarget(), runs=0)


def test_fleet_merges_targets_and_notes_emulation():
    a, b, dead = ScriptedTarget(name="adb:A"), ScriptedTarget(name="adb:B", emulated=True), ScriptedTarget(
        name="adb:C", fail_prepare=True)
    report = run_benchmarks("m.tflite", [a, b, dead], threads=[1], **FAST)
    assert [r.device.target for r in report.runs] == ["adb:A", "adb:B"]
    assert any("emulated" in n for n in report.notes) and any("adb:C" in n for n in report.notes)
    assert dead.calls[-1] == "cleanup"


def test_write_outputs_and_raw_files(tmp_path):
    report = run_benchmark("m.tflite", ScriptedTarget(fail_on={("cpu", 2)}), threads=[1, 2], **FAST)
    paths = write_bench_outputs(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["runs"][0]["raw_output"] == "raw/adb_FAKE_cpu_t1.txt" and data["runs"][0]["raw_text"] is None
    assert (tmp_path / "out" / "raw" / "adb_FAKE_cpu_t1.txt").read_text() == "count=3\n"
    assert data["runs"][1]["status"] == "failed"
    assert "| adb:FAKE | cpu | 1 | ok |" in paths["markdown"].read_text()
    assert "<svg" in paths["html"].read_text()


def test_write_outputs_unwritable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    report = run_benchmark("m.tflite", ScriptedTarget(), **FAST)
    with pytest.raises(EdgekitError, match="cannot write benchmark results"):
        write_bench_outputs(report, blocker / "out")


# --- make_targets and the CLI ---------------------------------------------------------------------------

def test_make_targets():
    assert [t.name for t in make_targets("host")] == ["host"]
    with pytest.raises(EdgekitError, match="unknown --target"):
        make_targets("usb:1")


def test_cli_bench_host(tiny_onnx_file, tmp_path):
    out = tmp_path / "bench out"
    result = CliRunner().invoke(main, ["bench", str(tiny_onnx_file), "--threads", "1,2", "--runs", "3",
                                       "--min-secs", "0", "--warmup", "1", "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["config"]["threads"] for r in report["runs"]] == [1, 2]
    assert {p.name for p in out.iterdir()} == {"bench.json", "bench.md", "bench.html", "raw"}
    assert len(list((out / "raw").iterdir())) == 2


def test_cli_bench_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["bench", str(tmp_path / "nope.onnx")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(main, ["bench", str(tmp_path / "nope.onnx"), "--threads", "0"])
    assert result.exit_code == 2 and "thread counts from 1 to 256" in result.output
    result = runner.invoke(main, ["bench", str(tmp_path / "nope.onnx"), "--threads", "1,100000"])
    assert result.exit_code == 2 and "thread counts from 1 to 256" in result.output
    result = runner.invoke(main, ["bench", str(tmp_path / "nope.onnx"), "--accelerator", "tpu"])
    assert result.exit_code == 2 and "choose from" in result.output


# --- the device runner script ---------------------------------------------------------------------------

def _runner(*args, timeout=120):
    return subprocess.run([sys.executable, str(RUNNER), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_device_runner_onnx_with_profile(tiny_onnx_file, tmp_path):
    done = _runner(tiny_onnx_file, "--threads", "1", "--runs", "5", "--warmup", "1", "--op-profile",
                   "--output-npy", tmp_path / "y.npy")
    assert done.returncode == 0, done.stderr
    parsed, doc = parse_runner_output(done.stdout)
    assert parsed.latency.count == 5 and parsed.latency.p90_ms is not None
    assert doc["runtime"].startswith("onnxruntime") and doc["outputs"][0]["shape"] == [1, 4]
    assert {r.op_type for r in parsed.op_profile} >= {"Conv", "Gemm"}
    assert (tmp_path / "y.npy").is_file()


def test_device_runner_tflite_matches_edgekit_runtime(tiny_tflite_file, tmp_path):
    import numpy as np

    from edgekit.runtimes import open_runtime

    x = np.random.default_rng(5).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = _runner(tiny_tflite_file, "--accelerator", "xnnpack", "--runs", "2", "--input-npy", tmp_path / "x.npy",
                   "--output-npy", tmp_path / "y.npy")
    assert done.returncode == 0, done.stderr
    with open_runtime(tiny_tflite_file) as rt:
        expected = rt.run(x.transpose(0, 3, 1, 2))[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-6)


def test_device_runner_failure_is_one_json_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    done = _runner(bad)
    assert done.returncode == 1
    with pytest.raises(EdgekitError, match="edgekit device runner failed"):
        parse_runner_output(done.stdout)


# --- benchmark binaries --------------------------------------------------------------------------------

def test_resolve_binary_explicit_cache_and_offline_message(tmp_path):
    explicit = tmp_path / "my_benchmark_model"
    explicit.write_bytes(b"\x7fELF")
    assert resolve_benchmark_binary("benchmark_model", "arm64-v8a", explicit, cache_dir=tmp_path) == explicit
    with pytest.raises(BinaryNotFoundError, match="does not exist"):
        resolve_benchmark_binary("benchmark_model", "arm64-v8a", tmp_path / "nope", cache_dir=tmp_path)
    with pytest.raises(BinaryNotFoundError) as info:
        resolve_benchmark_binary("benchmark_model", "arm64-v8a", cache_dir=tmp_path)
    message = str(info.value)
    assert "android_aarch64_benchmark_model" in message and str(tmp_path / "arm64-v8a" / "benchmark_model") in message
    with pytest.raises(BinaryNotFoundError, match="publishes no prebuilt"):
        resolve_benchmark_binary("onnxruntime_perf_test", "arm64-v8a", cache_dir=tmp_path)
    cached = tmp_path / "armeabi-v7a" / "benchmark_model"
    cached.parent.mkdir()
    cached.write_bytes(b"\x7fELF")
    assert resolve_benchmark_binary("benchmark_model", "armeabi-v7a", cache_dir=tmp_path) == cached


@pytest.fixture()
def file_server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **k: quiet(*a, directory=str(root), **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_records_sha256_and_reports_progress(file_server, tmp_path):
    import hashlib

    root, base = file_server
    payload = bytes(range(256)) * 40000  # ~10 MB
    (root / "bm").write_bytes(payload)
    messages = []
    path = download_benchmark_binary("arm64-v8a", cache_dir=tmp_path / "cache", url=f"{base}/bm",
                                     progress=messages.append)
    assert path == tmp_path / "cache" / "arm64-v8a" / "benchmark_model" and path.read_bytes() == payload
    assert path.stat().st_mode & 0o111
    record = json.loads(Path(f"{path}.json").read_text())
    assert record["sha256"] == hashlib.sha256(payload).hexdigest() and record["bytes"] == len(payload)
    assert any("of 10.2 MB" in m for m in messages)


def test_download_offline_says_where_to_put_the_file(file_server, tmp_path):
    _, base = file_server
    with pytest.raises(DownloadError) as info:
        download_benchmark_binary("arm64-v8a", cache_dir=tmp_path / "cache", url=f"{base}/missing")
    assert str(tmp_path / "cache" / "arm64-v8a" / "benchmark_model") in str(info.value)
    assert not (tmp_path / "cache" / "arm64-v8a" / "benchmark_model").exists()
