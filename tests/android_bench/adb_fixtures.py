"""pytest fixtures for the adb tests: a private adb server (the real client) and simulated devices on it.

``adb`` is an AdbClient on a free port, its server killed at teardown. ``sim_devices`` is a factory:
``sim_devices(n, **SimDevice options)`` starts n devices, ``adb connect``-s each (an ``offline`` device
is connected in the background, since adb waits 10 s for its answer) and waits until the server lists
them in the expected state. Test modules import ``adb_fixture, sim_devices_fixture`` to register them.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from adb_device import SimDevice

from edgekit.android_bench.adb import AdbClient

OUTPUTS = Path(__file__).with_name("outputs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_state(client: AdbClient, serial: str, state: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = {e.serial: e.state for e in client.devices()}.get(serial)
        if seen == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{serial} never reached state {state!r} (last seen: {seen!r})")


@pytest.fixture(name="adb")
def adb_fixture():
    """The real adb client on a private server port; the server is killed at teardown."""
    client = AdbClient("adb", server_port=free_port())
    client.start_server()
    yield client
    client.kill_server()


@pytest.fixture(name="sim_devices")
def sim_devices_fixture(adb, tmp_path):
    """Factory: ``sim_devices(n=1, **options) -> list[SimDevice]``, connected to the ``adb`` fixture."""
    started: list[SimDevice] = []
    background: list[subprocess.Popen] = []

    def make(n: int = 1, **options) -> list[SimDevice]:
        devices = []
        for _ in range(n):
            device = SimDevice(tmp_path / f"device{len(started)}", **options).start()
            started.append(device)
            devices.append(device)
            state = options.get("state", "device")
            if state == "offline":
                background.append(subprocess.Popen(adb.command("connect", device.address), stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
            else:
                subprocess.run(adb.command("connect", device.address), capture_output=True, check=True, timeout=30)
            wait_for_state(adb, device.address, state)
        return devices

    yield make
    for process in background:
        process.kill()
        process.wait()
    for device in started:
        device.stop()


def recorded(name: str) -> str:
    """A recorded tool output from tests/android_bench/outputs, without its '# source:' line."""
    lines = (OUTPUTS / name).read_text().splitlines(keepends=True)
    return "".join(lines[1:] if lines and lines[0].startswith("# source:") else lines)


def fake_benchmark_model(path: Path, output: str, *, extra: str = "", record_argv: bool = True) -> Path:
    """A stand-in ``benchmark_model`` for the simulated device: records its argv (one per line) in
    ``$HOME/benchmark_argv.txt`` (unless ``record_argv`` is false: an ssh board's HOME is a real one), fails
    unless ``--graph`` names an existing file, runs ``extra`` (shell), then prints ``output`` (a recorded
    real output)."""
    path.write_text(
        "#!/bin/sh\n"
        + ('printf \'%s\\n\' "$@" > "$HOME/benchmark_argv.txt"\n' if record_argv else "")
        + 'for a in "$@"; do case "$a" in --graph=*) graph="${a#--graph=}";; esac; done\n'
        '[ -f "$graph" ] || { echo "ERROR: graph not found: $graph" >&2; exit 1; }\n'
        f"{extra}\n"
        "cat <<'EDGEKIT_RECORDED_OUTPUT'\n"
        f"{output.rstrip()}\n"
        "EDGEKIT_RECORDED_OUTPUT\n"
    )
    path.chmod(0o755)
    return path


def when_threads(threads: int, shell: str) -> str:
    """``extra`` for fake_benchmark_model: run ``shell`` only in the configuration with ``threads`` threads."""
    return f'case "$*" in *--num_threads={threads}\\ *|*--num_threads={threads}) {shell};; esac'


def stubborn(seconds: float = 600) -> str:
    """``extra`` for fake_benchmark_model: become a process that ignores SIGTERM (as a benchmark stuck in a
    driver call does) and sleeps; its command line still names the binary, so it is ours to kill."""
    code = f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep({seconds})"
    return f'exec {shlex.quote(sys.executable)} -c {shlex.quote(code)} "$0"'
