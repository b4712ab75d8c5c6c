"""``--target all``: several simulated devices benchmarked at once through the real adb client."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from adb_fixtures import adb_fixture, fake_benchmark_model, recorded, sim_devices_fixture  # noqa: F401

from edgekit.android_bench.adb_target import adb_targets
from edgekit.android_bench.fleet import run_fleet
from edgekit.android_bench.remote_target import DeviceLimits
from edgekit.errors import EdgekitError

pytestmark = pytest.mark.skipif(shutil.which("adb") is None, reason="adb is not installed (apt-get install adb)")

QUICK = {"runs": 3, "min_secs": 0.0, "warmup": 1}


@pytest.fixture(autouse=True)
def empty_binary_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))


def test_three_devices_run_in_parallel_and_merge(adb, sim_devices, tiny_tflite_file, tmp_path):
    models = ["Pixel 6", "Galaxy S22", "OnePlus 9"]
    sims = [sim_devices(1, props={"ro.product.model": m})[0] for m in models]
    # each run takes 1 s on its device: three devices one after another would take >= 3 s
    binary = fake_benchmark_model(tmp_path / "benchmark_model", recorded("benchmark_model_v2.4_android_yolov5_cpu.txt"),
                                  extra="sleep 1")
    targets = adb_targets("all", adb, benchmark_binary=binary)
    started = time.monotonic()
    report = run_fleet(tiny_tflite_file, targets, **QUICK)
    elapsed = time.monotonic() - started
    assert sorted(r.device.model for r in report.runs) == sorted(models)
    assert [r.device.target for r in report.runs] == [t.name for t in targets]  # merged in target order
    assert all(r.status == "ok" and r.latency.mean_ms == pytest.approx(249.684) for r in report.runs)
    assert elapsed < 2.8, f"fleet of 3 took {elapsed:.1f} s: not parallel"
    for sim in sims:
        assert not any(sim.host_path("/data/local/tmp/edgekit").iterdir())


def test_failing_devices_are_marked_failed_without_losing_the_others(adb, sim_devices, tiny_onnx_file):
    good, = sim_devices(1, props={"ro.product.model": "Good"})
    full, = sim_devices(1, push_fail="No space left on device", push_fail_match=".onnx")
    locked, = sim_devices(1, state="unauthorized")
    targets = adb_targets("all", adb)
    report = run_fleet(tiny_onnx_file, targets, threads=(1, 2), **QUICK)
    by_device: dict[str, list] = {}
    for run in report.runs:
        by_device.setdefault(run.device.target, []).append(run)
    assert [r.status for r in by_device[f"adb:{good.address}"]] == ["ok", "ok"]
    failed_full, = by_device[f"adb:{full.address}"]
    assert failed_full.status == "failed"
    assert failed_full.error == f"adb:{full.address}: push model failed: No space left on device"
    failed_locked, = by_device[f"adb:{locked.address}"]
    assert failed_locked.status == "failed" and failed_locked.device.serial == locked.address
    assert failed_locked.error.startswith(f"adb:{locked.address}: device is unauthorized: accept")
    assert any(note.startswith(f"adb:{full.address}: failed before any run") for note in report.notes)


def test_a_wedged_device_costs_the_fleet_its_timeout_not_more(adb, sim_devices, tiny_tflite_file, tmp_path):
    good = sim_devices(2)
    wedged, = sim_devices(1, wedge_on="--num_threads=")
    binary = fake_benchmark_model(tmp_path / "benchmark_model", recorded("benchmark_model_v2.4_android_yolov5_cpu.txt"))
    limits = DeviceLimits(grace_s=0.5, recovery_s=1.0)
    targets = adb_targets("all", adb, benchmark_binary=binary, limits=limits)
    started = time.monotonic()
    report = run_fleet(tiny_tflite_file, targets, threads=(1, 2), timeout=2, **QUICK)
    elapsed = time.monotonic() - started
    assert elapsed < 2 + limits.grace_s + limits.recovery_s + 8.0  # margin for a busy machine
    statuses = {(r.device.target, r.config.threads): r.status for r in report.runs}
    assert all(statuses[(f"adb:{sim.address}", t)] == "ok" for sim in good for t in (1, 2))
    assert [statuses[(f"adb:{wedged.address}", t)] for t in (1, 2)] == ["failed", "failed"]
    assert any(note.startswith(f"adb:{wedged.address}: cleanup failed: ") for note in report.notes)


def test_one_worker_thread_per_device(adb, sim_devices, tiny_onnx_file, monkeypatch):
    sim_devices(3)
    targets = adb_targets("all", adb)
    seen: set[str] = set()
    original = type(targets[0]).prepare

    def recording_prepare(self, model):
        seen.add(threading.current_thread().name)
        return original(self, model)

    monkeypatch.setattr(type(targets[0]), "prepare", recording_prepare)
    report = run_fleet(tiny_onnx_file, targets, **QUICK)
    assert len(seen) == 3 and all(name.startswith("edgekit-fleet") for name in seen)
    assert [r.status for r in report.runs] == ["ok"] * 3


def test_empty_fleet_is_an_error(tiny_onnx_file):
    with pytest.raises(EdgekitError, match="no targets"):
        run_fleet(tiny_onnx_file, [])
