"""Keep the CLI's stdout for its result: what other libraries print while edgekit works goes to stderr.

ONNX Runtime's quantizer ``print``s calibration chatter, and native code (LiteRT, XNNPACK, ONNX Runtime)
writes to file descriptor 1 directly, so ``edgekit export --json > out.json`` would not be JSON. Python's
``sys.stdout`` alone is not enough: the redirection has to happen at the file-descriptor level, and the C
library's own stdout buffer has to be flushed before fd 1 is given back.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers, so text a native library buffered leaves while fd 1 is redirected."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to load by name (Windows): nothing buffered there
        pass


def _flush(stream) -> None:
    with contextlib.suppress(Exception):  # a closed or replaced stream has nothing to flush
        stream.flush()


def _redirect_fd(fd: int, *, to: int) -> int | None:
    """Point ``fd`` at what ``to`` points at; returns a duplicate of the old ``fd`` to restore, or None when
    either descriptor is closed."""
    try:
        saved = os.dup(fd)
    except OSError:
        return None
    try:
        os.dup2(to, fd)
    except OSError:
        os.close(saved)
        return None
    return saved


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout inside the block to stderr: Python's ``print`` (``sys.stdout``) and
    native writes to file descriptor 1 alike. Restores both on exit, also on errors, so a result printed
    after the block reaches the real stdout alone. Works where fd 1 or 2 is closed (then only the Python
    level is redirected); raises nothing of its own."""
    _flush(sys.stdout)
    _flush_c_stdio()
    saved = _redirect_fd(1, to=2)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for stream in (sys.stdout, sys.__stdout__, sys.stderr):  # text buffered for fd 1 leaves now, to fd 2
            _flush(stream)
        _flush_c_stdio()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
