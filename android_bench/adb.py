"""A thin client over the real ``adb`` binary: discovery, shell with exit codes, push, pull, properties.

Every call is an argument list for ``subprocess`` (never a local shell), and every command that reaches
the device's shell is quoted word by word (see ``edgekit.android_bench.shell``). ``server_port`` selects
a private adb server (``adb -P PORT`` and ``ANDROID_ADB_SERVER_PORT``), so a test or a CI job never
touches the user's own server on 5037.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.android_bench.shell import (
    ShellResult,
    one_line,
    require_success,
    split_exit_marker,
    with_exit_marker,
)
from edgekit.errors import DeviceError, DeviceTimeoutError

DEFAULT_TIMEOUT_S = 60.0
# `adb devices -l` appends these key:value fields after the state; the state itself may contain spaces
# ("no permissions (missing udev rules? ...); see [http://...]").
_DEVICE_FIELDS = ("usb", "product", "model", "device", "transport_id", "features")
_STATE_HINTS = {
    "unauthorized": "accept the 'Allow USB debugging' dialog on the device (or check ~/.android/adbkey)",
    "offline": "the device does not answer: reconnect it, or `adb reconnect`",
    "authorizing": "authorization in progress: retry in a few seconds",
    "connecting": "the connection is still being set up: retry in a few seconds",
}


@dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l``: serial, state (``device``, ``unauthorized``, ``offline``, ...)."""

    serial: str
    state: str
    product: str | None = None
    model: str | None = None
    device: str | None = None
    transport_id: str | None = None


def parse_devices_output(text: str) -> list[DeviceEntry]:
    """In: the text ``adb devices -l`` printed. Out: one DeviceEntry per attached device, in order."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*", "adb server")):
            continue
        tokens = line.split()
        fields: dict[str, str] = {}
        while len(tokens) > 2 and re.fullmatch(r"[a-z_]+:\S*", tokens[-1]) and \
                tokens[-1].split(":", 1)[0] in _DEVICE_FIELDS:
            key, _, value = tokens.pop().partition(":")
            fields[key] = value
        if len(tokens) < 2:
            continue
        entries.append(DeviceEntry(tokens[0], " ".join(tokens[1:]), fields.get("product"), fields.get("model"),
                                   fields.get("device"), fields.get("transport_id")))
    return entries


def state_problem(serial: str, state: str) -> str:
    """The one-line message for a device that is attached but not usable (state other than ``device``)."""
    hint = _STATE_HINTS.get(state.split()[0] if state else "", "")
    if state.startswith("no permissions"):
        hint = "the USB device is not accessible to this user: add udev rules or join the plugdev group"
    return f"adb:{serial}: device is {state.split(' (')[0]}" + (f": {hint}" if hint else "")


class AdbClient:
    """The ``adb`` binary and the adb server it talks to.

    In: ``adb_path`` (name on PATH or a path), ``server_port`` (None: adb's default 5037). Raises
    DeviceError when no adb binary is found.
    """

    def __init__(self, adb_path: str = "adb", *, server_port: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        found = shutil.which(adb_path)
        if found is None:
            raise DeviceError(
                f"adb: not found ({adb_path!r}): install it (Debian/Ubuntu: apt-get install adb; or Android "
                "SDK platform-tools) or pass --adb PATH"
            )
        self.adb = found
        self.server_port = server_port
        self.timeout_s = timeout_s
        self._server_started = False

    def command(self, *args: str) -> list[str]:
        """The argument list that runs ``adb`` with ``args`` against this client's server."""
        port = ["-P", str(self.server_port)] if self.server_port else []
        return [self.adb, *port, *args]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.server_port:
            env["ANDROID_ADB_SERVER_PORT"] = str(self.server_port)
        return env

    def run(self, args: Sequence[str], *, target: str = "adb", step: str, timeout_s: float | None = None,
            stdout=None) -> subprocess.CompletedProcess:
        """Run ``adb ARGS`` (bytes out). Raises DeviceTimeoutError naming target and step after the timeout."""
        if not self._server_started and args and args[0] not in ("start-server", "kill-server"):
            self.start_server()
        limit = timeout_s if timeout_s is not None else self.timeout_s
        try:
            return subprocess.run(
                self.command(*args), stdin=subprocess.DEVNULL, stdout=stdout or subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=limit, env=self._env(), check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeviceTimeoutError(f"{target}: {step}: no result after {limit:g} s (timeout)") from None
        except OSError as exc:
            raise DeviceError(f"{target}: {step}: cannot run {self.adb}: {exc.strerror or exc}") from None

    def start_server(self) -> None:
        """Start the adb server if it is not running, so its banner never mixes into a command's stderr."""
        result = self.run(["start-server"], step="start adb server")
        if result.returncode != 0:
            raise DeviceError(f"adb: start adb server failed: {one_line(result.stderr.decode(errors='replace'))}")
        self._server_started = True

    def kill_server(self) -> None:
        """Stop this client's adb server (a private one in tests and CI)."""
        self.run(["kill-server"], step="kill adb server", timeout_s=15)
        self._server_started = False

    def devices(self) -> list[DeviceEntry]:
        """Every device the server knows, in any state. Raises DeviceError when adb fails."""
        result = self.run(["devices", "-l"], step="list devices")
        text = result.stdout.decode(errors="replace")
        if result.returncode != 0:
            raise DeviceError(f"adb: list devices failed: {one_line(result.stderr.decode(errors='replace'))}")
        return parse_devices_output(text)

    def connect(self, address: str, *, timeout_s: float = 30.0) -> str:
        """``adb connect HOST:PORT`` (a device over TCP, as device farms expose them). Out: its serial.

        Raises DeviceError when the connection is refused or the device does not accept this host's key;
        adb itself exits 0 in both cases, so its words are read.
        """
        result = self.run(["connect", address], target=f"adb:{address}", step="connect", timeout_s=timeout_s)
        text = (result.stdout + result.stderr).decode(errors="replace").strip()
        if "connected to" in text and "failed" not in text and "unable" not in text:
            return address
        if "authenticate" in text:
            raise DeviceError(state_problem(address, "unauthorized"))
        raise DeviceError(f"adb:{address}: connect failed: {one_line(text) or 'no answer'}")

    def disconnect(self, address: str) -> None:
        """``adb disconnect HOST:PORT``; silent when it was not connected."""
        self.run(["disconnect", address], target=f"adb:{address}", step="disconnect", timeout_s=15)

    def device(self, serial: str) -> AdbDevice:
        """An AdbDevice for ``serial`` (no check that it is attached: ``get_state`` does that)."""
        return AdbDevice(self, serial)


class AdbDevice:
    """One device behind an AdbClient. ``name`` is ``adb:SERIAL``, the prefix of every error it raises."""

    def __init__(self, client: AdbClient, serial: str) -> None:
        self.client = client
        self.serial = serial
        self.name = f"adb:{serial}"

    def __repr__(self) -> str:
        return f"AdbDevice({self.serial!r})"

    def _adb(self, args: Sequence[str], *, step: str, timeout_s: float | None = None) -> subprocess.CompletedProcess:
        return self.client.run(["-s", self.serial, *args], target=self.name, step=step, timeout_s=timeout_s)

    def get_state(self) -> str:
        """The device's state as the server sees it (``device``, ``offline``, ``unauthorized``...), or
        ``missing`` when the server does not know the serial."""
        for entry in self.client.devices():
            if entry.serial == self.serial:
                return entry.state
        return "missing"

    def require_ready(self) -> None:
        """Raises DeviceError (with what to do) unless the device is attached and in state ``device``."""
        state = self.get_state()
        if state == "missing":
            raise DeviceError(f"{self.name}: device not found: check `adb devices` (or `adb connect HOST:PORT`)")
        if state != "device":
            raise DeviceError(state_problem(self.serial, state))

    def shell(self, argv: Sequence[str], timeout_s: float | None = None, *, step: str = "shell") -> ShellResult:
        """Run ``argv`` on the device (every argument quoted: the device shell interprets nothing).

        Out: ShellResult(exit_code, stdout, stderr) with the command's own status (signals as 128+N).
        Raises DeviceError naming the step when the command could not run or the connection was lost
        before it finished, DeviceTimeoutError after ``timeout_s``.
        """
        result = self._adb(["shell", "-n", "-T", with_exit_marker(argv)], step=step, timeout_s=timeout_s)
        stdout = result.stdout.decode("utf-8", errors="replace")
        stderr = result.stderr.decode("utf-8", errors="replace")
        stdout, code = split_exit_marker(stdout)
        if code is None:
            errors = [line for line in stderr.splitlines() if line.startswith(("error:", "adb: error"))]
            if errors:
                detail = errors[0].split("error:", 1)[1].strip().rstrip(".")
                if "unauthorized" in detail or "offline" in detail:
                    raise DeviceError(state_problem(self.serial, detail.replace("device ", "")))
                raise DeviceError(f"{self.name}: {step}: {detail}")
            raise DeviceError(f"{self.name}: {step}: connection to the device was lost before the command finished")
        return ShellResult(code, stdout, stderr)

    def check_shell(self, argv: Sequence[str], timeout_s: float | None = None, *, step: str) -> ShellResult:
        """``shell`` that also raises DeviceError (exit status and output tail) for a non-zero exit."""
        return require_success(self.shell(argv, timeout_s, step=step), self.name, step)

    def push(self, local: str | Path, remote: str, *, step: str = "push", timeout_s: float | None = None) -> None:
        """Copy a local file to ``remote`` (a full device path; parent directories are created).

        Raises DeviceError with adb's reason (no space, read-only file system, disconnected).
        """
        if not Path(local).is_file():
            raise DeviceError(f"{self.name}: {step}: local file {str(local)!r} does not exist")
        result = self._adb(["push", str(local), remote], step=step, timeout_s=timeout_s)
        if result.returncode != 0:
            raise DeviceError(f"{self.name}: {step} failed: {_adb_error(result)}")

    def pull(self, remote: str, local: str | Path, *, step: str = "pull", timeout_s: float | None = None) -> None:
        """Copy the device file ``remote`` to ``local``. Raises DeviceError with adb's reason."""
        result = self._adb(["pull", remote, str(local)], step=step, timeout_s=timeout_s)
        if result.returncode != 0:
            raise DeviceError(f"{self.name}: {step} failed: {_adb_error(result)}")

    def reconnect(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the device to be usable again after its connection dropped (the adb
        server reconnects a network device on its own; a replugged USB device reappears). Raises
        DeviceError when it is not back in time."""
        try:
            result = self._adb(["wait-for-device"], step="wait for the device", timeout_s=timeout_s)
        except DeviceTimeoutError:
            raise DeviceError(f"{self.name}: wait for the device: not back within {timeout_s:g} s") from None
        if result.returncode != 0:
            raise DeviceError(f"{self.name}: wait for the device failed: {_adb_error(result)}")

    def getprop(self, key: str | None = None) -> str | dict[str, str]:
        """One property's value ('' when unset), or with no key every property as a dict."""
        if key is not None:
            return self.check_shell(["getprop", key], step=f"getprop {key}").stdout.strip()
        text = self.check_shell(["getprop"], step="getprop").stdout
        return dict(re.findall(r"^\[([^\]]*)\]: \[(.*)\]\s*$", text, flags=re.M))

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists on the device."""
        return self.shell(["test", "-e", path], step=f"check {path}").exit_code == 0

    def rm_rf(self, path: str) -> None:
        """``rm -rf path`` on the device. Raises DeviceError when it fails."""
        self.check_shell(["rm", "-rf", path], step=f"remove {path}")


def _adb_error(result: subprocess.CompletedProcess) -> str:
    """adb's own error line from a failed push/pull ('remote No space left on device', ...), on one line."""
    text = (result.stderr + result.stdout).decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            message = line.split("error:", 1)[1].strip()
            # "failed to copy 'a' to 'b': remote No space left on device" -> keep the reason, drop paths
            if message.startswith("failed to ") and "': " in message:
                message = message.rsplit("': ", 1)[1]
            return message.removeprefix("remote ") or line
    return one_line(text) or f"adb exited {result.returncode}"
