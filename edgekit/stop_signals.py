"""SIGTERM and SIGHUP stop the CLI the way Ctrl-C does: by unwinding, so staged files are removed.

Python's default for these signals is to die on the spot, which skips every ``finally`` and leaves an
export's hidden temporary file behind. The handler here raises ``Stopped`` instead, a KeyboardInterrupt,
so the code paths that already clean up after Ctrl-C clean up after ``kill`` and a closed terminal too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived. A KeyboardInterrupt, so every ``except KeyboardInterrupt: raise`` that keeps
    Ctrl-C from turning into an error treats it the same. ``exit_code`` is 128 + the signal number, what a
    shell reports for a process the signal killed."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


_received: int | None = None  # the first stop signal since the handlers were installed
_delivered = False  # whether Stopped was raised for it
_deferral_depth = 0


def _deliver() -> None:
    global _delivered
    if _received is not None and not _delivered and _deferral_depth == 0:
        _delivered = True
        raise Stopped(_received)


def _on_stop_signal(signum: int, _frame) -> None:
    global _received
    if _received is None:  # a second signal must not cut short the cleanup the first one started
        _received = signum
        _deliver()


def raise_on_stop_signals() -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise ``Stopped`` in the main thread. Returns a function that puts the
    previous handlers back.

    A signal that is ignored (``nohup`` ignores SIGHUP) or already handled by someone else is left alone.
    Off the main thread, where Python cannot install handlers, nothing changes.
    """
    global _received, _delivered
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _on_stop_signal)
    _received, _delivered = None, False

    def restore() -> None:
        global _received, _delivered
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received, _delivered = None, False

    return restore


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Run a block that must not be cut in half, such as renaming a set of files into place: a stop signal
    that arrives inside it raises ``Stopped`` when the block ends (unless the block raised)."""
    global _deferral_depth
    _deferral_depth += 1
    try:
        yield
    finally:
        _deferral_depth -= 1
    _deliver()
