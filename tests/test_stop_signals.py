"""SIGTERM and SIGHUP stop the CLI like Ctrl-C: temporary files removed, one line, exit 128 + signal."""

import os
import signal
import subprocess
import sys
import time

import pytest

from edgekit.stop_signals import Stopped, raise_on_stop_signals, stop_signals_deferred

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


def _wait_for_staged_file(proc: subprocess.Popen, out_dir, deadline_s: float = 60.0) -> None:
    """Return once the export has staged its hidden ``.tmp.onnx`` (the parity check runs on it)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if out_dir.is_dir() and any(".tmp" in p.name for p in out_dir.iterdir()):
            return
        if proc.poll() is not None:
            pytest.fail(f"export ended (exit {proc.returncode}) before staging its file: {proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail("export did not stage its file within a minute")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_during_export_leaves_no_temporary_file(tmp_path, signum):
    out_dir = tmp_path / "out"
    # 200 parity inputs keep the staged file on disk for about a second on the small digits model.
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "export", "--model", "shufflenet_v2_digits", "--output", str(out_dir),
         "--samples", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A run under nohup would hand the child an ignored SIGHUP, which edgekit rightly keeps ignored.
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
    )
    try:
        _wait_for_staged_file(proc, out_dir)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"edgekit: interrupted by {signal.Signals(signum).name}"
    assert sorted(p.name for p in out_dir.iterdir()) == []


def test_signal_inside_deferred_block_raises_when_it_ends():
    restore = raise_on_stop_signals()
    reached_end_of_block = False
    try:
        with pytest.raises(Stopped) as caught:
            with stop_signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run by now; it must not raise inside the block
                reached_end_of_block = True
    finally:
        restore()
    assert reached_end_of_block
    assert caught.value.exit_code == 128 + signal.SIGTERM and str(caught.value) == "interrupted by SIGTERM"
    assert isinstance(caught.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ignored_hangup_stays_ignored():
    """Under ``nohup`` SIGHUP is ignored; edgekit must not turn a closed terminal back into a stop."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        restore = raise_on_stop_signals()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        restore()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
