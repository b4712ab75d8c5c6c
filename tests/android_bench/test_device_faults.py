"""Device faults end to end: a configuration past its limit, a wedged device, a stalled push and a link cut
mid-push, through the real adb client against the simulated device and through a real sshd behind a relay
that stalls or cuts the link (``flaky_link.py``).

Each fault must end within the limit that ran out plus ``grace_s + recovery_s`` (7 s by default) and a
margin for a busy machine, keep the configurations that finished, kill what it started on the device and
remove the run directory, or say in one line what it left where.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from adb_fixtures import (  # noqa: F401  (fixtures)
    adb_fixture,
    fake_benchmark_model,
    recorded,
    sim_devices_fixture,
    stubborn,
    when_threads,
)
from ssh_fixtures import flaky_connection, running_from, sshd_fixture  # noqa: F401  (fixture)

from edgekit.android_bench.adb_target import adb_targets
from edgekit.android_bench.bench import run_benchmark, write_bench_outputs
from edgekit.android_bench.remote_target import DeviceLimits
from edgekit.android_bench.ssh_target import SshTarget
from edgekit.errors import DeviceError, DeviceTimeoutError

needs_adb = pytest.mark.skipif(shutil.which("adb") is None, reason="adb is not installed (apt-get install adb)")

QUICK = {"runs": 3, "min_secs": 0.0, "warmup": 1}
MARGIN_S = 8.0  # the steps before the fault, and a busy CI machine; never a speed claim
OUTPUT = recorded("benchmark_model_v2.4_android_yolov5_cpu.txt")
SIZE = 2_000_000  # a model large enough to be cut or stalled mid-push
SHORT_PUSH = DeviceLimits(step_s=1.0, push_bytes_per_s=4e6, recovery_s=1.0)  # a 2 MB push may take 1.5 s


@pytest.fixture(autouse=True)
def empty_binary_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(name="big_model")
def big_model_fixture(tmp_path) -> Path:
    """A 2 MB file named .tflite: the flow pushes it without reading it."""
    path = tmp_path / "big.tflite"
    path.write_bytes(os.urandom(SIZE))
    return path


def run_dirs(sim) -> list[Path]:
    root = sim.host_path("/data/local/tmp/edgekit")
    return sorted(root.iterdir()) if root.exists() else []


def timed(function, *args, **kwargs):
    """(result or raised DeviceError, seconds)."""
    started = time.monotonic()
    try:
        result = function(*args, **kwargs)
    except DeviceError as exc:
        result = exc
    return result, time.monotonic() - started


# --- adb ----------------------------------------------------------------------------------------------


@needs_adb
def test_configuration_past_the_default_limit_is_killed_and_the_finished_one_kept(adb, sim_devices,
                                                                                tiny_tflite_file, tmp_path):
    # Before: a TypeError formatting the missing --timeout; no report, nothing written, the binary left running.
    sim, = sim_devices(1)
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT, extra=when_threads(2, stubborn()))
    limits = DeviceLimits(run_s=1.0, grace_s=0.5)
    target, = adb_targets("adb", adb, benchmark_binary=binary, limits=limits)
    report, elapsed = timed(run_benchmark, tiny_tflite_file, target, threads=(1, 2), **QUICK)
    assert [r.status for r in report.runs] == ["ok", "failed"]
    assert report.runs[1].error == (f"adb:{sim.address}: run benchmark_model (xnnpack, 2 thread(s)): exceeded the "
                                    "default limit of 1 s per configuration (pass a longer --timeout); stopped it "
                                    "on the device")
    assert elapsed < limits.run_s + limits.grace_s + limits.recovery_s + MARGIN_S
    assert sim.running() == []  # it ignored the device's `timeout`; the host killed it
    assert run_dirs(sim) == []
    paths = write_bench_outputs(report, tmp_path / "out")
    runs = json.loads(paths["json"].read_text())["runs"]
    assert [(r["config"]["threads"], r["status"]) for r in runs] == [(1, "ok"), (2, "failed")]
    assert runs[0]["latency"]["mean_ms"] == pytest.approx(249.684)
    assert (tmp_path / "out" / runs[0]["raw_output"]).is_file()


@needs_adb
def test_wedged_device_ends_within_the_timeout_and_says_what_is_left(adb, sim_devices, tiny_tflite_file,
                                                                     tmp_path):
    # Before: --timeout 5 with three configurations took 131 s (20 s per run, 30 s temperature, 60 s cleanup).
    sim, = sim_devices(1, wedge_on="--num_threads=2")
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT)
    target, = adb_targets("adb", adb, benchmark_binary=binary)
    cooldowns: list[float] = []
    report, elapsed = timed(run_benchmark, tiny_tflite_file, target, threads=(1, 2, 4), timeout=5, cooldown=30,
                            sleep=cooldowns.append, **QUICK)
    limits = target.limits
    assert elapsed < 5 + limits.grace_s + limits.recovery_s + MARGIN_S
    assert cooldowns == [30]  # before the second configuration; none for a device that stopped answering
    assert [r.status for r in report.runs] == ["ok", "failed", "failed"]
    gave_up = f"the device stopped answering (stop the benchmark: no answer within {limits.recovery_s:g} s)"
    assert report.runs[1].error == (f"adb:{sim.address}: run benchmark_model (xnnpack, 2 thread(s)): exceeded "
                                    f"--timeout 5 s; could not stop it on the device: {gave_up}")
    assert report.runs[2].error == (f"adb:{sim.address}: run benchmark_model (xnnpack, 4 thread(s)): not "
                                    f"attempted: {gave_up}")
    assert f"adb:{sim.address}: cleanup failed: clean up run directory: not attempted: {gave_up}; left " \
           f"{target.run_dir} on the device and the benchmark may still run there" in report.notes
    assert all("\n" not in r.error for r in report.runs[1:])


@needs_adb
@pytest.mark.parametrize("fault", ["stall_push_on", "wedge_on"], ids=["shell-answers", "wedged"])
def test_stalled_push_ends_within_its_limit_and_cleans_up_or_says_what_is_left(adb, sim_devices, big_model,
                                                                               tmp_path, fault):
    # Before: 600 s for the push, then 60 s for the cleanup (661 s in all).
    sim, = sim_devices(1, **{fault: ".tflite"})
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT)
    target, = adb_targets("adb", adb, benchmark_binary=binary, limits=SHORT_PUSH)
    error, elapsed = timed(run_benchmark, big_model, target, **QUICK)
    assert isinstance(error, DeviceTimeoutError)
    stalled = (f"adb:{sim.address}: push model: not finished after 1.5 s (2.0 MB; a push is given 1 s + 1 s per "
               "4 MB): the connection stalled or is too slow")
    assert elapsed < SHORT_PUSH.transfer_s(SIZE) + SHORT_PUSH.recovery_s + MARGIN_S
    if fault == "stall_push_on":  # the shell still answered: the partial file went with the run directory
        assert str(error) == stalled
        assert run_dirs(sim) == []
    else:
        assert str(error) == (f"{stalled}; cleanup failed: clean up run directory: no result after 1 s (timeout); "
                              f"left {target.run_dir} on the device")


@needs_adb
@pytest.mark.parametrize("comes_back", [True, False], ids=["blip", "unplugged"])
def test_link_cut_mid_push_leaves_nothing_or_says_what_is_left(adb, sim_devices, big_model, tmp_path, comes_back):
    # Before: the partial model and the run directory stayed on the device, and no message said so.
    sim, = sim_devices(1, disconnect_on=".tflite", reconnect=comes_back)
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT)
    target, = adb_targets("adb", adb, benchmark_binary=binary, limits=DeviceLimits(recovery_s=1.0))
    error, elapsed = timed(run_benchmark, big_model, target, **QUICK)
    assert isinstance(error, DeviceError)
    message = str(error)
    assert message.startswith(f"adb:{sim.address}: push model failed: ") and "\n" not in message
    assert elapsed < target.limits.recovery_s + MARGIN_S
    if comes_back:  # adb reconnected within recovery_s and the cleanup's second try removed everything
        assert "cleanup" not in message
        assert run_dirs(sim) == []
    else:
        assert message.endswith(f"; cleanup failed: wait for the device: not back within "
                                f"{target.limits.recovery_s:g} s; left {target.run_dir} on the device")
        partial = sim.host_path(f"{target.run_dir}/{big_model.name}")
        assert 0 < partial.stat().st_size < SIZE


@needs_adb
@pytest.mark.slow
def test_cli_run_longer_than_the_real_default_limit_writes_what_finished(adb, sim_devices, tiny_tflite_file,
                                                                          tmp_path, monkeypatch):
    from click.testing import CliRunner

    from edgekit.cli import main

    sim, = sim_devices(1)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb.server_port))
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT, extra=when_threads(2, stubborn()))
    out = tmp_path / "bench"
    default = DeviceLimits()
    started = time.monotonic()
    result = CliRunner().invoke(main, ["bench", str(tiny_tflite_file), "--target", f"adb:{sim.address}",
                                       "--threads", "1,2", "--runs", "3", "--min-secs", "0", "--warmup", "1",
                                       "--benchmark-binary", str(binary), "--output", str(out)])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert elapsed < default.run_s + default.grace_s + default.recovery_s + MARGIN_S
    runs = json.loads((out / "bench.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["ok", "failed"]
    assert "exceeded the default limit of 60 s per configuration" in runs[1]["error"]
    assert (out / "bench.html").stat().st_size > 0
    assert sim.running() == [] and run_dirs(sim) == []


# --- ssh ----------------------------------------------------------------------------------------------


def ssh_target(sshd, tmp_path, binary: Path, **limits) -> tuple[SshTarget, Path, Path]:
    """An SshTarget through the flaky link, with short limits (every ssh command takes about 0.5 s here);
    out: (target, its control directory, the board's work root)."""
    control = tmp_path / "link"
    board = tmp_path / "board"
    limits = {"grace_s": 0.5, "recovery_s": 2.0, **limits}
    target = SshTarget(flaky_connection(sshd, control), work_root=str(board), benchmark_binary=binary,
                       limits=DeviceLimits(**limits))
    return target, control, board


def test_ssh_configuration_past_its_limit_is_killed_on_the_board(sshd, tiny_tflite_file, tmp_path):
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT, extra=when_threads(2, stubborn()),
                                  record_argv=False)
    target, _, board = ssh_target(sshd, tmp_path, binary, run_s=1.0)
    report, elapsed = timed(run_benchmark, tiny_tflite_file, target, threads=(1, 2), **QUICK)
    limits = target.limits
    assert [r.status for r in report.runs] == ["ok", "failed"]
    assert report.runs[1].error.endswith("exceeded the default limit of 1 s per configuration (pass a longer "
                                         "--timeout); stopped it on the device")
    assert elapsed < limits.run_s + limits.grace_s + limits.recovery_s + MARGIN_S
    assert running_from(board) == []  # sshd does not stop what a dropped session started: the host did
    assert list(board.iterdir()) == []


def test_ssh_wedged_board_ends_within_the_timeout(sshd, tiny_tflite_file, tmp_path):
    control = tmp_path / "link"
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT, record_argv=False,
                                  extra=when_threads(2, f"touch {control}/stall; exec sleep 30"))
    target, control, board = ssh_target(sshd, tmp_path, binary)
    report, elapsed = timed(run_benchmark, tiny_tflite_file, target, threads=(1, 2, 4), timeout=2, **QUICK)
    limits = target.limits
    assert elapsed < 2 + limits.grace_s + limits.recovery_s + MARGIN_S
    assert [r.status for r in report.runs] == ["ok", "failed", "failed"]
    assert "exceeded --timeout 2 s; could not stop it on the device: the device stopped answering" in \
           report.runs[1].error
    assert "not attempted: the device stopped answering" in report.runs[2].error
    assert any(note.endswith(f"left {target.run_dir} on the device and the benchmark may still run there")
               for note in report.notes)


def test_ssh_stalled_push_ends_within_its_limit_and_cleans_up(sshd, big_model, tmp_path):
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT, record_argv=False)
    target, control, board = ssh_target(sshd, tmp_path, binary, step_s=1.0, push_bytes_per_s=4e6)
    (control / "stall_after").write_text(str(SIZE // 4))
    error, elapsed = timed(run_benchmark, big_model, target, **QUICK)
    assert isinstance(error, DeviceTimeoutError)
    assert str(error).startswith(f"{target.name}: push model: not finished after 1.5 s (2.0 MB;")
    assert elapsed < target.limits.transfer_s(SIZE) + target.limits.recovery_s + MARGIN_S
    assert list(board.iterdir()) == []


@pytest.mark.parametrize("comes_back", [True, False], ids=["blip", "board-off"])
def test_ssh_link_cut_mid_push_leaves_nothing_or_says_what_is_left(sshd, big_model, tmp_path, comes_back):
    binary = fake_benchmark_model(tmp_path / "benchmark_model", OUTPUT, record_argv=False)
    target, control, board = ssh_target(sshd, tmp_path, binary)
    (control / "cut_after").write_text(f"{SIZE // 4}" + ("" if comes_back else " gone"))
    error, elapsed = timed(run_benchmark, big_model, target, **QUICK)
    assert isinstance(error, DeviceError)
    message = str(error)
    assert message.startswith(f"{target.name}: push model") and "\n" not in message
    assert elapsed < target.limits.recovery_s + MARGIN_S
    if comes_back:
        assert "cleanup" not in message and list(board.iterdir()) == []
    else:
        assert message.endswith(f"left {target.run_dir} on the device")
        assert Path(target.run_dir).is_dir()
