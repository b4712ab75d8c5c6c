"""Commands for a remote POSIX shell (adb shell, ssh): quoting every argument and reading the exit status.

Both ``adb shell`` and ``ssh`` join their arguments with spaces and hand the string to the device's shell,
so each argument is ``shlex.quote``-d here and the device shell sees only literal words. The command is
followed by a marker carrying its exit status on stdout: adb 29 reports exit 0 with truncated output when
the connection drops mid-command, and ssh reports its own failures as 255, so the marker is the only
reliable sign that the command ran to its end, and with which status.
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
