"""The ssh target: command construction as pure functions, then the whole flow against a real OpenSSH
server started on loopback (skipped where sshd is not installed or the tests do not run as root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from adb_fixtures import free_port
from ssh_fixtures import sshd_fixture  # noqa: F401  (fixture)

from edgekit.android_bench.bench import run_benchmark
from edgekit.android_bench.ssh_target import SshConnection, SshTarget, parse_ssh_spec, ssh_command
from edgekit.errors import DeviceError, EdgekitError

NASTY = "model 'x'; touch PWNED $(id) & y"


# --- pure ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ("ssh:pi@raspberrypi.local", ("pi@raspberrypi.local", None)),
    ("ssh:pi@10.0.0.7:2222", ("pi@10.0.0.7", 2222)),
    ("ssh:board", ("board", None)),
    ("ssh:root@[::1]:22", ("root@[::1]", 22)),
])
def test_parse_ssh_spec(spec, expected):
    assert parse_ssh_spec(spec) == expected


@pytest.mark.parametrize("spec", ["ssh:", "ssh:-oProxyCommand=touch%20x", "ssh:pi@host;rm", "ssh:a b@host",
                                  "ssh:pi@host:99999", "ssh:pi@-host"])
def test_parse_ssh_spec_rejects_what_ssh_could_misread(spec):
    with pytest.raises(EdgekitError, match="expected ssh:USER@HOST"):
        parse_ssh_spec(spec)


def test_ssh_command_is_an_argument_list_in_batch_mode():
    argv = ssh_command("pi@board", "echo hi", port=2222, extra_options=["-i", "/k"])
    assert argv[0] == "ssh" and argv[-3:] == ["--", "pi@board", "echo hi"]
    assert "BatchMode=yes" in argv and argv[argv.index("-p") + 1] == "2222"
    assert argv.index("-i") < argv.index("--")


# --- against a real sshd on loopback ------------------------------------------------------------------


def test_shell_exit_codes_stderr_and_literal_arguments(sshd, tmp_path):
    connection, _ = sshd
    assert connection.shell(["sh", "-c", "echo out; echo err >&2; exit 5"]) == (5, "out\n", "err\n")
    result = connection.shell(["printf", "[%s]\\n", NASTY, "$HOME", "*"], step="echo", timeout_s=20)
    assert result.stdout.splitlines() == [f"[{NASTY}]", "[$HOME]", "[*]"]
    assert not list(Path.cwd().glob("PWNED*")) and not list(Path.home().glob("PWNED*"))


def test_push_and_pull_keep_a_hostile_name_literal(sshd, tmp_path):
    connection, _ = sshd
    local = tmp_path / "src.bin"
    local.write_bytes(os.urandom(200_000))
    remote_dir = tmp_path / "board dir"
    remote_dir.mkdir()
    remote = f"{remote_dir}/{NASTY}"
    connection.push(local, remote)
    assert Path(remote).read_bytes() == local.read_bytes()
    back = tmp_path / "back.bin"
    connection.pull(remote, back)
    assert back.read_bytes() == local.read_bytes()
    with pytest.raises(DeviceError, match=rf"^{connection.name}: pull result failed: .*No such file"):
        connection.pull(f"{remote_dir}/missing", tmp_path / "m", step="pull result")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()


def test_benchmark_over_ssh_with_the_device_runner(sshd, tiny_onnx_file, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    connection, _ = sshd
    work_root = tmp_path / "board"
    target = SshTarget(connection, work_root=str(work_root), python=sys.executable)
    report = run_benchmark(tiny_onnx_file, target, runs=3, min_secs=0.0, warmup=1)
    run, = report.runs
    assert run.status == "ok", run.error
    assert run.tool == "edgekit-runner" and run.latency.count >= 3
    assert run.device.target == connection.name and run.device.abi == os.uname().machine
    assert list(work_root.iterdir()) == []


def test_unreachable_and_refused_hosts_are_one_line_errors(sshd, tmp_path):
    connection, home = sshd
    closed = SshConnection(connection.destination, port=free_port(), extra_options=connection.extra_options)
    with pytest.raises(DeviceError, match=rf"^{closed.name}: read facts: ssh failed: .*Connection refused"):
        closed.shell(["true"], 20, step="read facts")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    stranger = SshConnection(connection.destination, port=connection.port,
                             extra_options=["-i", str(tmp_path / "other"), "-o", "IdentitiesOnly=yes",
                                            "-o", f"UserKnownHostsFile={home}/known_hosts"])
    with pytest.raises(DeviceError, match=r"ssh failed: .*Permission denied"):
        stranger.shell(["true"], 20, step="read facts")
