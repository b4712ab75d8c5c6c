"""ARM Linux boards (a Raspberry Pi, a Jetson) over ssh as benchmark targets: the adb flow over OpenSSH.

Every call is an argument list for the local ``ssh`` (``-o BatchMode=yes``: never a password prompt, a
missing key is an error). Files travel through ``ssh HOST sh -c 'cat > "$1"' sh PATH`` rather than scp:
scp's remote paths are parsed by the remote shell in its legacy protocol and literally in its SFTP
protocol (OpenSSH 9+), so the same name could mean two files; over ``cat`` the path is one quoted
argument on every version, and the board needs no sftp-server.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from edgekit.android_bench.remote_target import RemoteTarget
from edgekit.android_bench.results import DeviceFacts
from edgekit.android_bench.shell import (
    ShellResult,
    one_line,
    quote_argv,
    require_success,
    split_exit_marker,
    with_exit_marker,
)
from edgekit.errors import DeviceError, DeviceTimeoutError, EdgekitError

LINUX_WORK_ROOT = "/tmp/edgekit"
DEFAULT_TIMEOUT_S = 60.0
_DESTINATION = re.compile(r"^(?:[A-Za-z0-9._][A-Za-z0-9._-]*@)?(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])$")
SSH_EXIT_ERROR = 255


def parse_ssh_spec(spec: str) -> tuple[str, int | None]:
    """``ssh:USER@HOST[:PORT]`` -> (``USER@HOST``, port or None). Raises EdgekitError for anything else
    (including a host that would read as an ssh option, such as ``-oProxyCommand=...``)."""
    rest = spec.removeprefix("ssh:")
    port = None
    match = re.fullmatch(r"(.+?)(?::(\d+))?", rest)
    if match and match.group(2):
        rest, port = match.group(1), int(match.group(2))
    if not _DESTINATION.match(rest) or (port is not None and not 0 < port < 65536):
        raise EdgekitError(f"--target {spec!r}: expected ssh:USER@HOST or ssh:USER@HOST:PORT")
    return rest, port


def ssh_command(destination: str, remote_command: str, *, port: int | None = None, ssh_path: str = "ssh",
                extra_options: Sequence[str] = ()) -> list[str]:
    """The local argument list that runs ``remote_command`` (already quoted) on ``destination``.

    ``--`` ends the options, so a destination can never be taken for one."""
    argv = [ssh_path, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if port is not None:
        argv += ["-p", str(port)]
    return [*argv, *extra_options, "--", destination, remote_command]


class SshConnection:
    """A shell and file copies on one ssh destination. ``name`` is ``ssh:USER@HOST[:PORT]``."""

    def __init__(self, destination: str, *, port: int | None = None, ssh_path: str = "ssh",
                 extra_options: Sequence[str] = (), timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.destination = destination
        self.port = port
        self.ssh_path = ssh_path
        self.extra_options = list(extra_options)
        self.timeout_s = timeout_s
        self.name = f"ssh:{destination}" + (f":{port}" if port else "")

    def command(self, remote_command: str) -> list[str]:
        return ssh_command(self.destination, remote_command, port=self.port, ssh_path=self.ssh_path,
                           extra_options=self.extra_options)

    def _run(self, remote_command: str, *, step: str, timeout_s: float | None, stdin=None,
             stdout=None) -> subprocess.CompletedProcess:
        limit = timeout_s if timeout_s is not None else self.timeout_s
        try:
            return subprocess.run(self.command(remote_command),
                                  stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceTimeoutError(f"{self.name}: {step}: no result after {limit:g} s (timeout)") from None
        except FileNotFoundError:
            raise DeviceError(f"{self.name}: {step}: ssh client {self.ssh_path!r} not found: install "
                              "openssh-client") from None

    def _ssh_failure(self, result: subprocess.CompletedProcess, step: str) -> DeviceError:
        text = result.stderr.decode("utf-8", errors="replace")
        return DeviceError(f"{self.name}: {step}: ssh failed: {one_line(text) or f'exit {result.returncode}'}")

    def shell(self, argv: Sequence[str], timeout_s: float | None = None, *, step: str = "shell") -> ShellResult:
        """Run ``argv`` on the board, every argument quoted. Out: ShellResult. Raises DeviceError when ssh
        cannot connect or the connection drops before the command ends, DeviceTimeoutError on timeout."""
        result = self._run(with_exit_marker(argv), step=step, timeout_s=timeout_s)
        stdout, code = split_exit_marker(result.stdout.decode("utf-8", errors="replace"))
        if code is None:
            raise self._ssh_failure(result, step)
        return ShellResult(code, stdout, result.stderr.decode("utf-8", errors="replace"))

    def check_shell(self, argv: Sequence[str], timeout_s: float | None = None, *, step: str) -> ShellResult:
        return require_success(self.shell(argv, timeout_s, step=step), self.name, step)

    def reconnect(self, timeout_s: float) -> None:
        """Nothing to wait for: every command opens its own ssh connection."""

    def push(self, local: str | Path, remote: str, *, step: str = "push", timeout_s: float | None = None) -> None:
        """Copy a local file to the board path ``remote`` (its directory must exist). Raises DeviceError."""
        if not Path(local).is_file():
            raise DeviceError(f"{self.name}: {step}: local file {str(local)!r} does not exist")
        with open(local, "rb") as source:
            result = self._run(with_exit_marker(["sh", "-c", 'cat > "$1"', "sh", remote]), step=step,
                               timeout_s=timeout_s, stdin=source)
        _, code = split_exit_marker(result.stdout.decode("utf-8", errors="replace"))
        if code is None:
            raise self._ssh_failure(result, step)
        if code != 0:
            reason = one_line(result.stderr.decode("utf-8", errors="replace")) or f"exit {code}"
            raise DeviceError(f"{self.name}: {step} failed: {reason}")

    def pull(self, remote: str, local: str | Path, *, step: str = "pull", timeout_s: float | None = None) -> None:
        """Copy the board file ``remote`` to ``local`` (written whole or not at all). Raises DeviceError."""
        partial = Path(f"{local}.partial")
        with open(partial, "wb") as sink:
            result = self._run(quote_argv(["cat", remote]), step=step, timeout_s=timeout_s, stdout=sink)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            if result.returncode == SSH_EXIT_ERROR:
                raise self._ssh_failure(result, step)
            reason = one_line(result.stderr.decode("utf-8", errors="replace")) or f"exit {result.returncode}"
            raise DeviceError(f"{self.name}: {step} failed: {reason}")
        os.replace(partial, local)


class SshTarget(RemoteTarget):
    """An ARM Linux board over ssh, with its run directories under ``/tmp/edgekit``."""

    def __init__(self, connection: SshConnection, *, work_root: str = LINUX_WORK_ROOT, emulated: bool = False,
                 **options) -> None:
        super().__init__(connection, work_root=work_root, **options)
        self.emulated = emulated

    @classmethod
    def from_spec(cls, spec: str, *, ssh_path: str = "ssh", extra_options: Sequence[str] = (),
                  **options) -> SshTarget:
        """``ssh:USER@HOST[:PORT]`` -> SshTarget; ``options`` as RemoteTarget's (benchmark_binary, run_id,
        download_binary, progress). Raises EdgekitError for a malformed spec."""
        destination, port = parse_ssh_spec(spec)
        connection = SshConnection(destination, port=port, ssh_path=ssh_path, extra_options=extra_options)
        return cls(connection, **options)

    def binary_abi(self) -> str:
        return f"linux-{self.facts().abi or 'unknown'}"

    def facts_from_probe(self, probe: dict) -> DeviceFacts:
        return DeviceFacts(target=self.name, model=probe["dtmodel"], abi=probe["uname"], os_version=probe["os"],
                           cores=probe["cores"], emulated=self.emulated)
