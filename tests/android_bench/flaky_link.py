"""A relay for ssh's ``ProxyCommand`` that stalls or cuts the link on request, for the ssh fault tests.

    python flaky_link.py CONTROL_DIR HOST PORT

It relays stdin to HOST:PORT and back, one process per ssh connection. Files in CONTROL_DIR, looked at
before every block and every 0.1 s, change what it does:

- ``stall``: forward nothing more, either way, and keep the connection open (a wedged board, a network
  that drops every packet); new connections stall too.
- ``stall_after`` holding N: this connection stalls once N bytes went to the board; the file is removed,
  so later connections work (a stalled transfer on a board that still answers).
- ``cut_after`` holding N, optionally followed by ``gone``: this connection is cut once N bytes went to
  the board and the file is removed (one cut); with ``gone``, the file ``gone`` is created at the cut.
- ``gone``: new connections are refused (the board is off).

EOF on either side ends the relay, so a killed ssh never leaves it behind.
"""

from __future__ import annotations

import os
import select
import socket
import sys
from pathlib import Path


def _take(path: Path) -> list[str] | None:
    """The words of a one-shot control file, which is removed; None when there is none."""
    try:
        words = path.read_text().split()
        path.unlink()
    except FileNotFoundError:
        return None
    return words


def _limit(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def relay(control: Path, host: str, port: int) -> int:
    if (control / "gone").exists():
        print("flaky_link: the board is gone", file=sys.stderr)
        return 1
    board = socket.create_connection((host, port))
    sent = 0
    stalled = False
    while True:
        ready, _, _ = select.select([0, board], [], [], 0.1)
        stalled = stalled or (control / "stall").exists()
        for source in ready:
            data = os.read(0, 65536) if source == 0 else board.recv(65536)
            if not data:
                return 0
            if stalled:
                continue
            if source != 0:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
                continue
            stall_at, cut_at = _limit(control / "stall_after"), _limit(control / "cut_after")
            if stall_at is not None and sent + len(data) > stall_at:
                _take(control / "stall_after")
                stalled = True
                continue
            if cut_at is not None and sent + len(data) > cut_at:
                words = _take(control / "cut_after") or []
                if "gone" in words:
                    (control / "gone").touch()
                board.sendall(data[: max(cut_at - sent, 0)])
                return 0
            board.sendall(data)
            sent += len(data)


if __name__ == "__main__":
    sys.exit(relay(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
