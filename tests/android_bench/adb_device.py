"""A simulated Android device that speaks adb's wire protocol on loopback, for tests.

The real adb client (Debian's adb 29) connects to it with ``adb connect 127.0.0.1:PORT`` exactly as it
connects to a phone over Wi-Fi or to a device farm: 24-byte message headers (command, arg0, arg1,
data_length, data_check, magic), CNXN/OPEN/OKAY/WRTE/CLSE, the ``shell:`` service (v1: one raw byte
stream), ``shell,v2,...:`` (shell protocol v2: packets of id byte + 4-byte little-endian length; stdin 0,
stdout 1, stderr 2, exit 3, close-stdin 4) and ``sync:`` (STAT/STA2/LST2/LIST/LIS2/SEND/RECV/QUIT with
DATA/DONE/OKAY/FAIL replies), so ``adb shell``, ``adb push`` and ``adb pull`` all work.

The device's filesystem is a temporary directory (``root``). Commands run with ``/bin/sh -c`` in that
directory, with ``PATH`` holding only ``root/system/bin`` (links to a whitelist of host tools, a
``getprop`` answering the configured properties, optionally ``python3`` and ``taskset``). Device paths
are mapped into the root by rewriting the command text: every absolute path starting with ``/data``,
``/sys``, ``/system``, ``/sdcard`` or ``/vendor`` gets the root prepended. That needs no privileges (a
private mount namespace needs CAP_SYS_ADMIN, which CI containers often lack, and a chroot needs a whole
root filesystem) and it leaves everything else about the command untouched, so quoting bugs in the
caller still show: the device shell really interprets what it is sent.

Faults a test can inject: ``state="unauthorized"`` (answers CNXN with AUTH and never accepts the key),
``state="offline"`` (accepts the TCP connection, never answers), ``disconnect_on=TEXT`` (drops the
connection, like a pulled cable, while a command containing TEXT runs, or after the first block of a push
to a path containing TEXT; with ``reconnect=True`` the device keeps listening, as a phone on Wi-Fi does
after a blip, and the adb server reconnects on its own), ``wedge_on=TEXT`` (from a command or a push path
containing TEXT on, the device answers nothing at all: no output, no exit status, no acknowledgement, as a
hung adbd or kernel), ``stall_push_on=TEXT`` (a push to a path containing TEXT stops being acknowledged
while the shell keeps answering, as when storage I/O hangs), ``push_fail=MESSAGE`` with
``push_fail_match=TEXT`` (a SEND whose path contains TEXT is answered with FAIL, as a full or read-only
partition answers). Crashes and slow commands need no injection: the device runs real commands, so a test
pushes a binary that crashes or sleeps.

Like adbd, the device writes a pushed file as its blocks arrive (a cut leaves a partial file), and when the
host closes a shell stream it sends SIGHUP to the shell alone: what the shell started keeps running unless
the caller stops it, which is what happens on a phone. ``stop()`` kills everything the device started.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541
A_VERSION = 0x01000001
MAX_PAYLOAD = 1024 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3

SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN = 0, 1, 2, 3, 4
SYNC_CHUNK = 64 * 1024

FEATURES = "shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir"

# Host tools linked into the device's /system/bin: roughly what Android's toybox offers.
TOOLS = (
    "sh cat ls rm mkdir rmdir chmod cp mv ln echo printf sleep kill test [ true false uname head tail wc id env "
    "tr sed grep stat touch dirname basename timeout nproc sha256sum md5sum readlink df date seq cut sort "
    "xargs find awk"
).split()

DEFAULT_PROPS = {
    "ro.product.model": "Pixel Sim",
    "ro.product.name": "sim_arm64",
    "ro.product.device": "sim",
    "ro.product.manufacturer": "edgekit",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.soc.model": "SM8450",
    "ro.board.platform": "taro",
    "ro.build.version.release": "13",
    "ro.build.version.sdk": "33",
    "ro.kernel.qemu": "1",  # its timings are this machine's, not a phone's: label them emulated
}

_MAPPED = re.compile(r"(?<![\w./-])/(?=(?:data|sys|system|sdcard|vendor)(?:/|\b))")


def host_cpu_layout() -> dict[int, int]:
    """cpuinfo_max_freq (kHz) per core: the upper half of this machine's usable cores are the "big" ones.

    Core indices are ones this process may run on, so the ``taskset`` mask the caller derives from the
    frequencies works with the host's real ``taskset``.
    """
    allowed = sorted(os.sched_getaffinity(0))
    big = set(allowed[len(allowed) // 2:])
    return {cpu: (2_841_600 if cpu in big else 1_785_600) for cpu in allowed}


class SimDevice:
    """One simulated device listening on 127.0.0.1 (``port`` after ``start()``).

    ``root``: the device filesystem. ``props``: getprop answers (merged over DEFAULT_PROPS). ``python``:
    an interpreter the device's ``python3`` runs (None: the device has no python). ``taskset``: link the
    host's taskset. ``cpus``: {index: max kHz}. ``thermal``: {zone type: millidegrees}.
    """

    def __init__(
        self,
        root: Path,
        *,
        props: dict[str, str] | None = None,
        state: str = "device",
        python: str | None = sys.executable,
        taskset: bool = True,
        cpus: dict[int, int] | None = None,
        thermal: dict[str, int] | None = None,
        disconnect_on: str | None = None,
        disconnect_after_s: float = 0.2,
        reconnect: bool = False,
        wedge_on: str | None = None,
        stall_push_on: str | None = None,
        push_fail: str | None = None,
        push_fail_match: str = "",
    ) -> None:
        self.root = Path(root)
        self.props = {**DEFAULT_PROPS, **(props or {})}
        self.state = state
        self.disconnect_on = disconnect_on
        self.disconnect_after_s = disconnect_after_s
        self.reconnect = reconnect
        self.wedge_on = wedge_on
        self.wedged = threading.Event()
        self.stall_push_on = stall_push_on
        self.push_fail = push_fail
        self.push_fail_match = push_fail_match
        self.commands: list[str] = []  # every shell command as received, before path mapping
        self.services: list[str] = []
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._build_root(python, taskset, cpus if cpus is not None else host_cpu_layout(),
                         thermal if thermal is not None else {"cpu-0-0": 41200, "battery": 30500})

    # --- filesystem ---------------------------------------------------------------------------------

    def _build_root(self, python, taskset, cpus, thermal) -> None:
        bin_dir = self.root / "system" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
        for tool in TOOLS + (["taskset"] if taskset else []):
            found = shutil.which(tool)
            if found and not (bin_dir / tool).exists():
                (bin_dir / tool).symlink_to(found)
        if python:
            _write_exec(bin_dir / "python3", f'#!/bin/sh\nexec {shlex.quote(python)} "$@"\n')
        cases = "".join(f"  {shlex.quote(k)}) printf '%s\\n' {shlex.quote(v)};;\n" for k, v in self.props.items())
        listing = "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items()))
        (self.root / "system" / "props.txt").write_text(listing)
        props_file = shlex.quote(str(self.root / "system" / "props.txt"))
        _write_exec(bin_dir / "getprop",
                    f'#!/bin/sh\nif [ $# -eq 0 ]; then cat {props_file}; exit 0; fi\ncase "$1" in\n{cases}'
                    "  *) echo;;\nesac\n")
        cpu_root = self.root / "sys" / "devices" / "system" / "cpu"
        for index, khz in cpus.items():
            freq = cpu_root / f"cpu{index}" / "cpufreq"
            freq.mkdir(parents=True, exist_ok=True)
            (freq / "cpuinfo_max_freq").write_text(f"{khz}\n")
        for i, (zone_type, milli) in enumerate(thermal.items()):
            zone = self.root / "sys" / "class" / "thermal" / f"thermal_zone{i}"
            zone.mkdir(parents=True, exist_ok=True)
            (zone / "type").write_text(zone_type + "\n")
            (zone / "temp").write_text(f"{milli}\n")

    def host_path(self, device_path: str) -> Path:
        """Where a device path lives on this machine (everything the sync service sees is inside root)."""
        return self.root / device_path.lstrip("/")

    def map_command(self, command: str) -> str:
        return _MAPPED.sub(str(self.root).replace("\\", "\\\\") + "/", command)

    def matches(self, fault: str | None, text: str) -> bool:
        """Whether a fault keyed on ``fault`` (None: not injected) fires for a command or path ``text``."""
        return fault is not None and fault in text

    def spawn(self, command: str, *, merge_stderr: bool) -> subprocess.Popen:
        self.commands.append(command)
        env = {"PATH": str(self.root / "system" / "bin"), "HOME": str(self.root / "data" / "local" / "tmp"),
               "TMPDIR": str(self.root / "data" / "local" / "tmp"), "ANDROID_DATA": "/data"}
        return subprocess.Popen(
            ["/bin/sh", "-c", self.map_command(command) if command else "exit 0"],
            cwd=self.root, env=env, start_new_session=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        )

    # --- network ------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SimDevice:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name=f"adb-sim-{self.port}").start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            conn = _Connection(self, sock)
            with self._lock:
                self._connections.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def disconnect(self) -> None:
        """The injected disconnect: ``unplug`` the device, or with ``reconnect`` only drop its connections."""
        if self.reconnect:
            self.drop_connections()
        else:
            self.unplug()

    def drop_connections(self) -> None:
        """Drop every connection but keep listening: a network blip, after which adb reconnects."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.drop()

    def unplug(self) -> None:
        """Drop every connection and stop listening: what pulling the cable looks like to adb."""
        if self._listener is not None:
            try:  # close() alone does not wake the thread blocked in accept(): the port would stay open
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        self.drop_connections()

    def running(self) -> list[int]:
        """The processes the device started that still run (every one has its working directory in root)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cwd = os.readlink(entry / "cwd")
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X") and (cwd == str(self.root) or cwd.startswith(f"{self.root}/")):
                found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """Unplug the device and kill every process it started (a switched-off phone runs nothing)."""
        self.unplug()
        for pid in self.running():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __enter__(self) -> SimDevice:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _write_exec(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


class _Connection:
    """One TCP connection from the adb server: reads messages, owns the streams opened on it."""

    def __init__(self, device: SimDevice, sock: socket.socket) -> None:
        self.device = device
        self.sock = sock
        self.send_lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.max_payload = 4096
        self.dropped = threading.Event()

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = struct.pack("<6I", command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF,
                             command ^ 0xFFFFFFFF)
        with self.send_lock:
            if self.dropped.is_set():
                raise ConnectionError("connection dropped")
            self.sock.sendall(header + data)

    def drop(self) -> None:
        self.dropped.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for stream in list(self.streams.values()):
            stream.closed_by_peer()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("eof")
            buf += chunk
        return buf

    def serve(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, _check, magic = struct.unpack("<6I", self._recv_exact(24))
                if magic != command ^ 0xFFFFFFFF:
                    raise ConnectionError("bad magic")
                self._handle(command, arg0, arg1, self._recv_exact(length) if length else b"")
        except (ConnectionError, OSError):
            if not self.dropped.is_set():
                self.drop()

    def _handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        device = self.device
        if device.wedged.is_set():
            return  # a wedged device reads what arrives and answers nothing
        if command == A_CNXN:
            self.max_payload = min(arg1, MAX_PAYLOAD)
            if device.state == "unauthorized":
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            elif device.state == "device":
                props = ";".join(f"{k}={device.props[k]}" for k in
                                 ("ro.product.name", "ro.product.model", "ro.product.device"))
                self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, f"device::{props};features={FEATURES}".encode())
            # "offline": never answer, so the server keeps the transport offline
        elif command == A_AUTH:
            if device.state == "unauthorized" and arg0 == AUTH_SIGNATURE:
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            # AUTH_RSAPUBLICKEY: a phone would show the "Allow USB debugging?" dialog; nobody answers it
        elif command == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            device.services.append(service)
            if device.matches(device.wedge_on, service):
                device.wedged.set()
                return
            local_id = self.next_id
            self.next_id += 1
            stream = _open_service(self, local_id, arg0, service)
            if stream is None:
                self.send(A_CLSE, 0, arg0)
                return
            self.streams[local_id] = stream
            self.send(A_OKAY, local_id, arg0)
            stream.start()
        elif command == A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.acked.release()
        elif command == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is not None and not stream.stalled:
                stream.inbox.put(data)
                self.send(A_OKAY, arg1, arg0)
        elif command == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream is not None:
                stream.closed_by_peer()


def _open_service(conn: _Connection, local_id: int, remote_id: int, service: str) -> _Stream | None:
    if service.startswith("shell"):
        head, _, command = service.partition(":")
        options = head.split(",")[1:]
        return _ShellStream(conn, local_id, remote_id, command, v2="v2" in options)
    if service == "sync:":
        return _SyncStream(conn, local_id, remote_id)
    return None


class _Stream:
    """A stream with adb's flow control: one WRTE in flight until the host answers OKAY."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.acked = threading.Semaphore(0)
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()
        self.write_lock = threading.Lock()
        self.stalled = False  # reads nothing more and acknowledges nothing: the host's writes block

    def start(self) -> None:
        threading.Thread(target=self._serve_safely, daemon=True).start()

    def _serve_safely(self) -> None:
        try:
            self.serve()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def serve(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        with self.write_lock:
            for start in range(0, len(data), self.conn.max_payload):
                while self.conn.device.wedged.is_set() and not self.closed.is_set():
                    time.sleep(0.05)
                if self.closed.is_set():
                    raise ConnectionError("stream closed")
                self.conn.send(A_WRTE, self.local_id, self.remote_id, data[start:start + self.conn.max_payload])
                while not self.acked.acquire(timeout=0.05):
                    if self.closed.is_set():
                        raise ConnectionError("stream closed")

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.conn.streams.pop(self.local_id, None)
            try:
                self.conn.send(A_CLSE, self.local_id, self.remote_id)
            except (ConnectionError, OSError):
                pass

    def closed_by_peer(self) -> None:
        self.closed.set()
        self.inbox.put(None)


class _ShellStream(_Stream):
    def __init__(self, conn, local_id, remote_id, command: str, *, v2: bool) -> None:
        super().__init__(conn, local_id, remote_id)
        self.command = command
        self.v2 = v2
        self.proc: subprocess.Popen | None = None

    def _packet(self, kind: int, data: bytes) -> bytes:
        return struct.pack("<BI", kind, len(data)) + data if self.v2 else data

    def _pump(self, pipe, kind: int) -> None:
        try:
            while chunk := os.read(pipe.fileno(), 65536):
                self.write(self._packet(kind, chunk))
        except (ConnectionError, OSError):
            self._hang_up()

    def _feed_stdin(self) -> None:
        buf = b""
        while (data := self.inbox.get()) is not None:
            if not self.v2:
                self._stdin_write(data)
                continue
            buf += data
            while len(buf) >= 5:
                kind, length = struct.unpack("<BI", buf[:5])
                if len(buf) < 5 + length:
                    break
                payload, buf = buf[5:5 + length], buf[5 + length:]
                if kind == SHELL_STDIN:
                    self._stdin_write(payload)
                elif kind == SHELL_CLOSE_STDIN:
                    self._stdin_close()
        self._hang_up()

    def _stdin_write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def _stdin_close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def _hang_up(self) -> None:
        """The host closed the stream: like adbd ("protocol FD died, sending SIGHUP"), signal the shell
        alone; a command it started in the foreground keeps running."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    def serve(self) -> None:
        device = self.conn.device
        self.proc = device.spawn(self.command, merge_stderr=not self.v2)
        pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, SHELL_STDOUT), daemon=True)]
        if self.v2:
            pumps.append(threading.Thread(target=self._pump, args=(self.proc.stderr, SHELL_STDERR), daemon=True))
        for pump in pumps:
            pump.start()
        threading.Thread(target=self._feed_stdin, daemon=True).start()
        if device.matches(device.disconnect_on, self.command):
            timer = threading.Timer(device.disconnect_after_s, device.disconnect)
            timer.daemon = True
            timer.start()
        returncode = self.proc.wait()
        for pump in pumps:
            pump.join()
        if self.closed.is_set():
            return
        # adbd reports a command killed by signal N as 128 + N, like a shell does
        code = 128 - returncode if returncode < 0 else returncode
        if self.v2:
            self.write(self._packet(SHELL_EXIT, bytes([code & 0xFF])))


class _SyncStream(_Stream):
    """adb's file sync service; requests arrive as a byte stream split arbitrarily across WRTE packets."""

    def __init__(self, conn, local_id, remote_id) -> None:
        super().__init__(conn, local_id, remote_id)
        self.buffer = b""

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = self.inbox.get()
            if data is None:
                raise ConnectionError("closed")
            self.buffer += data
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _request(self) -> tuple[bytes, int]:
        header = self._read(8)
        return header[:4], struct.unpack("<I", header[4:])[0]

    def _fail(self, message: str) -> None:
        data = message.encode()
        self.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    def serve(self) -> None:
        device = self.conn.device
        while True:
            kind, length = self._request()
            if kind == b"QUIT":
                return
            path = self._read(length).decode("utf-8", "surrogateescape")
            if kind == b"STAT":
                st = _stat(device.host_path(path), follow=False)
                self.write(b"STAT" + (struct.pack("<3I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
                                      if st else bytes(12)))
            elif kind in (b"STA2", b"LST2"):
                st = _stat(device.host_path(path), follow=kind == b"STA2")
                self.write(kind + _stat2(st))
            elif kind in (b"LIST", b"LIS2"):
                self._list(device.host_path(path), v2=kind == b"LIS2")
            elif kind == b"SEND":
                self._receive_file(path)
            elif kind == b"RECV":
                self._send_file(device.host_path(path))
            else:
                self._fail(f"unknown sync request {kind!r}")
                return

    def _list(self, directory: Path, *, v2: bool) -> None:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            names = []
        for name in [".", ".."] + names:
            st = _stat(directory / name, follow=False)
            raw = name.encode("utf-8", "surrogateescape")
            if v2:
                self.write(b"DNT2" + _stat2(st) + struct.pack("<I", len(raw)) + raw)
            elif st is not None:
                self.write(b"DENT" + struct.pack("<4I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime),
                                                  len(raw)) + raw)
        self.write(b"DONE" + bytes(72 if v2 else 16))

    def _receive_file(self, spec: str) -> None:
        """SEND: the file is written block by block as adbd writes it, so a cut leaves what arrived."""
        path, _, mode = spec.rpartition(",")
        device = self.conn.device
        if device.matches(device.wedge_on, path):
            device.wedged.set()
        if device.matches(device.stall_push_on, path):
            self.stalled = True
        failure = device.push_fail if device.push_fail and device.push_fail_match in path else None
        target = device.host_path(path)
        sink = None
        if failure is None:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                sink = open(target, "wb")  # noqa: SIM115 (closed below, also on a cut)
            except OSError as exc:
                failure = f"couldn't create file: {exc.strerror}"
        try:
            while True:
                kind, length = self._request()
                if kind == b"DATA":
                    block = self._read(length)
                    if sink is not None:
                        sink.write(block)
                        sink.flush()
                    if device.matches(device.disconnect_on, path):
                        device.disconnect()
                        return
                elif kind == b"DONE":
                    break
                else:
                    self._fail(f"unexpected {kind!r} during SEND")
                    return
        finally:
            if sink is not None:
                sink.close()
        if failure is not None:
            self._fail(failure)
            return
        os.chmod(target, int(mode or "644") & 0o7777)
        os.utime(target, (length, length))
        self.write(b"OKAY" + bytes(4))

    def _send_file(self, source: Path) -> None:
        try:
            data = source.read_bytes()
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
            return
        for start in range(0, len(data), SYNC_CHUNK):
            chunk = data[start:start + SYNC_CHUNK]
            self.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        self.write(b"DONE" + bytes(4))


def _stat(path: Path, *, follow: bool) -> os.stat_result | None:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except OSError:
        return None


def _stat2(st: os.stat_result | None) -> bytes:
    """The 68-byte body of a STA2/LST2/DNT2 reply (error, dev, ino, mode, nlink, uid, gid, size, a/m/ctime)."""
    if st is None:
        return struct.pack("<I", 2) + bytes(64)  # ENOENT
    return struct.pack("<IQQIIIIQqqq", 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                       st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime))


__all__ = ["SimDevice", "DEFAULT_PROPS", "host_cpu_layout"]
