"""Commands for a remote POSIX shell (adb shell, ssh): quoting every argument and reading the exit status.

Both ``adb shell`` and ``ssh`` join their arguments with spaces and hand the string to the device's shell,
so each argument is ``shlex.quote``-d here and the device shell sees only literal words. The command is
followed by a marker carrying its exit status on stdout: adb 29 reports exit 0 with truncated output when
the connection drops mid-command, and ssh reports its own failures as 255, so the marker is the only
reliable sign that the command ran to its end, and with which status.

Killing the local ``adb``/``ssh`` does not stop what it started: adbd sends SIGHUP to the shell alone and
sshd sends nothing, so a benchmark left behind keeps the device busy. A command that may have to be
stopped runs through ``recording_pid`` and is stopped with ``stop_argv``.
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Sequence
from typing import NamedTuple

from edgekit.errors import DeviceError

EXIT_MARKER = "\x1fedgekit-exit:"
_MARKER_PRINTF = "printf '\\037edgekit-exit:%d\\n' \"$?\""


class ShellResult(NamedTuple):
    """What a remote command did: its exit status and its separate stdout and stderr (text)."""

    exit_code: int
    stdout: str
    stderr: str


def quote_argv(argv: Sequence[str]) -> str:
    """In: argument list. Out: one shell command string in which every argument is a single literal word."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def with_exit_marker(argv: Sequence[str]) -> str:
    """The command string that runs ``argv`` and then prints EXIT_MARKER and its status on stdout."""
    return f"{quote_argv(argv)}; {_MARKER_PRINTF}"


# Writes its own pid, then becomes the command: the pid file names the benchmark process itself.
_PID_WRAPPER = 'echo "$$" > "$1" && shift && exec "$@"'
# Kills the process a pid file names, but only while its command line still mentions the run directory (a
# pid reused by another process is left alone); with a third argument, removes the run directory.
STOP_SCRIPT = r"""
pid=$(cat "$1" 2>/dev/null)
case "$pid" in ''|*[!0-9]*) pid= ;; esac
if [ -n "$pid" ]; then
  case "$(tr '\000' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in
    *"$2"*) kill -9 "$pid" 2>/dev/null && echo stopped ;;
  esac
fi
[ -z "$3" ] || rm -rf "$2"
"""


def recording_pid(argv: Sequence[str], pid_file: str) -> list[str]:
    """``argv`` run so that ``pid_file`` holds its pid: ``sh`` writes its own pid, then execs ``argv``."""
    return ["sh", "-c", _PID_WRAPPER, "sh", pid_file, *argv]


def stop_argv(pid_file: str, run_dir: str, *, remove: bool = False) -> list[str]:
    """The command that kills the process ``pid_file`` names when it runs from ``run_dir`` (it prints
    ``stopped`` when it killed one) and, with ``remove``, then removes ``run_dir``."""
    return ["sh", "-c", STOP_SCRIPT, "sh", pid_file, run_dir, *(["remove"] if remove else [])]


def split_exit_marker(stdout: str) -> tuple[str, int | None]:
    """In: stdout of a ``with_exit_marker`` command. Out: ``(stdout without the marker, status)``; the
    status is None when the marker is missing, i.e. the command never finished (connection lost)."""
    head, found, tail = stdout.rpartition(EXIT_MARKER)
    if not found:
        return stdout, None
    try:
        return head, int(tail.strip().splitlines()[0])
    except (ValueError, IndexError):
        return stdout, None


def describe_exit(code: int) -> str:
    """``exit 3``, ``exit 139 (killed by SIGSEGV)``, ``exit 127 (command not found)`` for error messages."""
    if code > 128:
        try:
            return f"exit {code} (killed by {signal.Signals(code - 128).name})"
        except ValueError:
            pass
    hints = {126: "not executable: wrong ABI or no exec permission",
             127: "command not found, or a binary the device cannot load"}
    return f"exit {code} ({hints[code]})" if code in hints else f"exit {code}"


def one_line(text: str, limit: int = 300) -> str:
    """The end of ``text`` on one line, at most ``limit`` characters, for error messages."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # ssh ends its own messages with CRLF
    printable = "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text)
    flat = " | ".join(line.strip() for line in printable.strip().splitlines() if line.strip())
    return flat if len(flat) <= limit else "..." + flat[-limit:]


def require_success(result: ShellResult, target: str, step: str) -> ShellResult:
    """In: a shell result. Out: the same result when its exit status is 0.

    Raises DeviceError ``TARGET: STEP failed: exit N (...): <end of stderr, else stdout>`` otherwise.
    """
    if result.exit_code != 0:
        detail = one_line(result.stderr) or one_line(result.stdout) or "no output"
        raise DeviceError(f"{target}: {step} failed: {describe_exit(result.exit_code)}: {detail}")
    return result
