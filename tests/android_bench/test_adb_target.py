"""AdbTarget end to end through the real adb client against simulated devices: facts, push, run, parse,
pinning, faults and cleanup. The simulated device runs real commands on this machine, so edgekit's
device runner times the model with the real ONNX Runtime / LiteRT."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from adb_fixtures import adb_fixture, fake_benchmark_model, recorded, sim_devices_fixture  # noqa: F401
from click.testing import CliRunner

from edgekit.android_bench.adb_target import AdbTarget, adb_targets, list_devices, targets_from_spec
from edgekit.android_bench.bench import run_benchmark
from edgekit.android_bench.remote_target import DeviceLimits, parse_thermal
from edgekit.cli import main
from edgekit.errors import DeviceError

pytestmark = pytest.mark.skipif(shutil.which("adb") is None, reason="adb is not installed (apt-get install adb)")

QUICK = {"runs": 3, "min_secs": 0.0, "warmup": 1}
NASTY = "shuffle 'net' v2; touch PWNED $(id) & x"


@pytest.fixture(autouse=True)
def empty_binary_cache(tmp_path, monkeypatch):
    """No benchmark binary cached by the developer may leak into these tests."""
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))


def run_dirs(sim) -> list[Path]:
    root = sim.host_path("/data/local/tmp/edgekit")
    return sorted(root.iterdir()) if root.exists() else []


def test_facts_come_from_getprop_and_sysfs(adb, sim_devices):
    sim, = sim_devices(1, props={"ro.product.model": "Pixel 7", "ro.soc.model": "", "ro.board.platform": "gs201",
                                 "ro.build.version.release": "14", "ro.build.version.sdk": "34"},
                       cpus={0: 1_803_000, 1: 1_803_000, 2: 2_348_000, 3: 2_850_000},
                       thermal={"battery": 31000, "BIG": 47250, "LITTLE": 39000})
    target = AdbTarget(adb.device(sim.address))
    facts = target.facts()
    assert (facts.target, facts.serial, facts.model, facts.soc, facts.abi, facts.os_version) == (
        f"adb:{sim.address}", sim.address, "Pixel 7", "gs201", "arm64-v8a", "Android 14 (SDK 34)")
    assert [(c.index, c.max_khz) for c in facts.cores] == [(0, 1_803_000), (1, 1_803_000), (2, 2_348_000),
                                                           (3, 2_850_000)]
    assert facts.emulated  # the simulator says ro.kernel.qemu=1: its timings are this machine's
    assert target.temperature_c() == pytest.approx(47.25)


def test_parse_thermal_prefers_cpu_zones_and_handles_units():
    text = "thermal\tbattery\t52000\nthermal\tcpu-1-0\t45\nthermal\tsoc\t-273000\nthermal\tgpu\t44000\n"
    assert parse_thermal(text) == 45.0
    assert parse_thermal("thermal\tbattery\t30000\n") == 30.0
    assert parse_thermal("") is None


def test_runner_benchmark_on_device_with_hostile_model_name(adb, sim_devices, tiny_onnx_file, tmp_path):
    sim, = sim_devices(1)
    model = tmp_path / f"{NASTY}.onnx"
    shutil.copy(tiny_onnx_file, model)
    target, = adb_targets("adb", adb)
    report = run_benchmark(model, target, threads=(1, 2), op_profile=True, timeout=60, **QUICK)
    assert [r.status for r in report.runs] == ["ok", "ok"], [r.error for r in report.runs]
    first = report.runs[0]
    assert first.tool == "edgekit-runner" and first.latency.count >= 3 and first.latency.mean_ms > 0
    assert first.op_profile and {row.op_type for row in first.op_profile} >= {"Conv"}
    assert first.temperature_c == pytest.approx(41.2)
    assert first.device.emulated and any("emulated" in note for note in report.notes)
    # the model arrived under its own name, every command quoted it, nothing ran from it, nothing is left
    words = [word for command in sim.commands for word in shlex.split(command)]
    assert any(word.startswith("/data/local/tmp/edgekit/") and word.endswith(f"/{NASTY}.onnx") for word in words)
    assert not list(sim.root.rglob("PWNED*"))
    assert run_dirs(sim) == []
    assert not (sim.root / "data/local/tmp/.cache").exists()  # runtime caches stayed in the run directory


def test_runner_benchmark_of_a_tflite_model(adb, sim_devices, tiny_tflite_file):
    sim_devices(1)
    target, = adb_targets("adb", adb)
    report = run_benchmark(tiny_tflite_file, target, accelerators=["xnnpack", "cpu"], **QUICK)
    assert [(r.config.accelerator, r.status) for r in report.runs] == [("xnnpack", "ok"), ("cpu", "ok")]
    assert "litert" in (report.runs[0].tool_version or "").lower() or report.runs[0].tool_version


def test_big_core_pinning_with_taskset(adb, sim_devices, tiny_onnx_file):
    sim, = sim_devices(1)
    target, = adb_targets("adb", adb)
    report = run_benchmark(tiny_onnx_file, target, **QUICK)
    mask = report.runs[0].config.cpu_mask
    cores = target.facts().cores
    if len({c.max_khz for c in cores}) == 1:
        pytest.skip("this machine has a single usable core: nothing to pin")
    assert mask is not None
    assert any(f"taskset {mask} " in command for command in sim.commands)


def test_no_taskset_means_no_pinning_recorded(adb, sim_devices, tiny_onnx_file):
    sim, = sim_devices(1, taskset=False, cpus={0: 1_000_000, 1: 2_000_000, 2: 2_000_000})
    target, = adb_targets("adb", adb)
    report = run_benchmark(tiny_onnx_file, target, **QUICK)
    assert report.runs[0].status == "ok"
    assert report.runs[0].config.cpu_mask is None
    assert not any("taskset" in command for command in sim.commands if "runner" in command)


def test_benchmark_binary_is_pushed_run_with_quoted_flags_and_parsed(adb, sim_devices, tiny_tflite_file, tmp_path):
    sim, = sim_devices(1, python=None)
    binary = fake_benchmark_model(tmp_path / "benchmark_model", recorded("benchmark_model_v2.4_android_yolov5_cpu.txt"))
    model = tmp_path / f"{NASTY}.tflite"
    shutil.copy(tiny_tflite_file, model)
    target, = targets_from_spec(f"adb:{sim.address}", benchmark_binary=binary, adb_path="adb",
                                server_port=adb.server_port)
    report = run_benchmark(model, target, threads=(4,), accelerators=["cpu"], op_profile=True, runs=50,
                           min_secs=1.5, warmup=2)
    run, = report.runs
    assert run.status == "ok", run.error
    assert run.tool == "benchmark_model"
    assert run.latency.mean_ms == pytest.approx(249.684) and run.latency.init_ms == pytest.approx(16.242)
    assert run.memory.overall_mb == pytest.approx(138.809)
    argv = sim.host_path("/data/local/tmp/benchmark_argv.txt").read_text().splitlines()
    graph = next(a for a in argv if a.startswith("--graph="))
    assert graph.endswith(f"/{NASTY}.tflite")
    assert {"--num_threads=4", "--num_runs=50", "--min_secs=1.5", "--warmup_runs=2", "--use_xnnpack=false",
            "--enable_op_profiling=true"} <= set(argv)
    assert "Inference timings in us" in run.raw_text
    assert run_dirs(sim) == [] and not list(sim.root.rglob("PWNED*"))


def test_crashing_binary_is_a_failed_run_and_the_directory_is_removed(adb, sim_devices, tiny_tflite_file, tmp_path):
    sim, = sim_devices(1)
    crash = 'echo "Segmentation fault" >&2; kill -SEGV $$'
    binary = fake_benchmark_model(tmp_path / "benchmark_model", "", extra=crash)
    target, = adb_targets("adb", adb, benchmark_binary=binary)
    report = run_benchmark(tiny_tflite_file, target, threads=(1, 2), **QUICK)
    assert [r.status for r in report.runs] == ["failed", "failed"]
    error = report.runs[0].error
    assert error.startswith(f"adb:{sim.address}: run benchmark_model (xnnpack, 1 thread(s)) failed: exit 139 "
                            "(killed by SIGSEGV): Segmentation fault")
    assert "\n" not in error
    assert run_dirs(sim) == []


def test_timeout_stops_a_slow_run_and_cleans_up(adb, sim_devices, tiny_tflite_file, tmp_path):
    sim, = sim_devices(1)
    binary = fake_benchmark_model(tmp_path / "benchmark_model", "", extra="sleep 30")
    target, = adb_targets("adb", adb, benchmark_binary=binary)
    report = run_benchmark(tiny_tflite_file, target, timeout=1, **QUICK)
    run, = report.runs
    assert run.status == "failed"
    assert run.error == f"adb:{sim.address}: run benchmark_model (xnnpack, 1 thread(s)): exceeded --timeout 1 s"
    assert run_dirs(sim) == []


def test_push_failure_names_the_step_and_cleans_up(adb, sim_devices, tiny_onnx_file):
    sim, = sim_devices(1, push_fail="No space left on device", push_fail_match=".onnx")
    target, = adb_targets("adb", adb)
    with pytest.raises(DeviceError, match=rf"^adb:{sim.address}: push model failed: No space left on device$"):
        run_benchmark(tiny_onnx_file, target, **QUICK)
    assert run_dirs(sim) == []


def test_disconnect_mid_run_keeps_the_finished_configuration(adb, sim_devices, tiny_tflite_file, tmp_path):
    sim, = sim_devices(1, disconnect_on="--num_threads=2", disconnect_after_s=0.3)
    binary = fake_benchmark_model(tmp_path / "benchmark_model", recorded("benchmark_model_v2.4_android_yolov5_cpu.txt"),
                                  extra='case "$*" in *--num_threads=2*) sleep 5;; esac')
    target, = adb_targets("adb", adb, benchmark_binary=binary, limits=DeviceLimits(recovery_s=1.0))
    report = run_benchmark(tiny_tflite_file, target, threads=(1, 2, 4), **QUICK)
    assert [r.status for r in report.runs[:2]] == ["ok", "failed"]
    assert report.runs[1].error == (f"adb:{sim.address}: run benchmark_model (xnnpack, 2 thread(s)): connection to "
                                    "the device was lost before the command finished")
    assert all(r.status == "failed" for r in report.runs[2:])
    assert f"adb:{sim.address}: cleanup failed: wait for the device: not back within 1 s; left {target.run_dir} " \
           "on the device and the benchmark may still run there" in report.notes


def test_no_binary_and_no_python_says_what_to_provide(adb, sim_devices, tiny_onnx_file):
    sim, = sim_devices(1, python=None)
    target, = adb_targets("adb", adb)
    with pytest.raises(DeviceError, match=rf"^adb:{sim.address}: prepare: no onnxruntime_perf_test for arm64-v8a: "
                                          r".*--benchmark-binary PATH.*no python3"):
        run_benchmark(tiny_onnx_file, target, **QUICK)


def test_target_specs_pick_devices_or_say_why_not(adb, sim_devices):
    with pytest.raises(DeviceError, match="^adb: no device attached"):
        adb_targets("adb", adb)
    locked, = sim_devices(1, state="unauthorized")
    with pytest.raises(DeviceError, match=rf"^adb:{locked.address}: device is unauthorized: accept"):
        adb_targets("adb", adb)
    with pytest.raises(DeviceError, match=rf"^adb:{locked.address}: device is unauthorized"):
        adb_targets(f"adb:{locked.address}", adb)
    one, two = sim_devices(2)
    with pytest.raises(DeviceError, match="several devices attached .*--target adb:SERIAL"):
        adb_targets("adb", adb)
    assert [t.name for t in adb_targets(f"adb:{two.address}", adb)] == [f"adb:{two.address}"]
    assert {t.name for t in adb_targets("all", adb)} == {f"adb:{d.address}" for d in (locked, one, two)}
    with pytest.raises(DeviceError, match="^adb:nosuch: device not found"):
        adb_targets("adb:nosuch", adb)


def test_adb_serial_that_is_an_address_gets_connected(adb, tmp_path):
    from adb_device import SimDevice

    with SimDevice(tmp_path / "farm") as sim:
        target, = adb_targets(f"adb:{sim.address}", adb)
        assert target.facts().model == "Pixel Sim"


def test_list_devices_reads_facts_of_usable_devices(adb, sim_devices):
    ok, = sim_devices(1, props={"ro.product.model": "Pixel 6"})
    locked, = sim_devices(1, state="unauthorized")
    listings = {item.serial: item for item in list_devices(client=adb)}
    assert listings[ok.address].facts.model == "Pixel 6" and "python3" in listings[ok.address].tools
    assert listings[locked.address].facts is None
    assert "unauthorized" in listings[locked.address].error


def test_devices_command_table_and_json(adb, sim_devices, monkeypatch):
    ok, = sim_devices(1, props={"ro.product.model": "Pixel 6", "ro.soc.model": "Tensor"})
    locked, = sim_devices(1, state="unauthorized")
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb.server_port))
    table = CliRunner().invoke(main, ["devices"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:5] == ["serial", "state", "model", "soc", "abi"]
    row = next(line for line in lines if line.startswith(ok.address))
    assert "Pixel 6" in row and "Tensor" in row and "arm64-v8a" in row and "Android 13" in row
    assert "Allow USB debugging" in next(line for line in lines if line.startswith(locked.address))
    data = json.loads(CliRunner().invoke(main, ["devices", "--json"]).output)
    assert {d["serial"]: d["state"] for d in data} == {ok.address: "device", locked.address: "unauthorized"}
    assert next(d for d in data if d["serial"] == ok.address)["facts"]["model"] == "Pixel 6"


def test_devices_command_without_adb_is_one_line(monkeypatch):
    result = CliRunner().invoke(main, ["devices", "--adb", "/nonexistent/adb"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("edgekit: error: adb: not found")
    assert len(result.output.strip().splitlines()) == 1


def test_bench_command_with_adb_target(adb, sim_devices, tiny_onnx_file, tmp_path, monkeypatch):
    sim, = sim_devices(1)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb.server_port))
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", str(tiny_onnx_file), "--target", f"adb:{sim.address}", "--runs", "3",
                                       "--min-secs", "0", "--warmup", "1", "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "bench.json").read_text())
    assert data["runs"][0]["status"] == "ok" and data["runs"][0]["device"]["target"] == f"adb:{sim.address}"
    assert (out / "bench.html").is_file()
    assert run_dirs(sim) == []


@pytest.mark.parametrize(("output", "count", "p95_ms"), [
    ("benchmark_model_android_xnnpack_p5_median_p95.txt", 50, 1373.207),
    ("benchmark_litert_model_android_sme2_op_profile.txt", 2112, 0.478),
])
def test_bench_command_with_a_binary_printing_todays_format(adb, sim_devices, tiny_tflite_file, tmp_path,
                                                            monkeypatch, output, count, p95_ms):
    # Since TensorFlow 2.10 every line starts with "INFO: " and the count= lines end in p5= median= p95=.
    sim, = sim_devices(1, python=None)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb.server_port))
    binary = fake_benchmark_model(tmp_path / "benchmark_model", recorded(output))
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", str(tiny_tflite_file), "--target", f"adb:{sim.address}",
                                       "--benchmark-binary", str(binary), "--accelerator", "cpu", "--runs", "3",
                                       "--min-secs", "0", "--warmup", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    run, = json.loads((out / "bench.json").read_text())["runs"]
    assert run["status"] == "ok", run["error"]
    assert (run["latency"]["count"], run["latency"]["p95_ms"]) == (count, pytest.approx(p95_ms))


def test_binary_for_the_wrong_abi_says_so(adb, sim_devices, tiny_tflite_file, tmp_path):
    # no taskset: glibc's execvp (taskset's) would hand a file the kernel refuses to /bin/sh instead
    sim, = sim_devices(1, taskset=False)
    binary = tmp_path / "benchmark_model"
    # the start of a 64-bit MIPS ELF executable: the device's kernel refuses to execute it
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\x08\x00" + bytes(100))
    target, = adb_targets("adb", adb, benchmark_binary=binary)
    report = run_benchmark(tiny_tflite_file, target, **QUICK)
    run, = report.runs
    assert run.status == "failed"
    assert run.error.startswith(f"adb:{sim.address}: run benchmark_model (xnnpack, 1 thread(s)) failed: exit 126 "
                                "(not executable: wrong ABI or no exec permission)")
    assert "Exec format error" in run.error
    assert run_dirs(sim) == []
