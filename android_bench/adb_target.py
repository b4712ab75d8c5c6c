"""Android devices over adb as benchmark targets, and ``--target`` specs (adb, adb:SERIAL, ssh:..., all).

An ``AdbTarget`` runs the remote flow (``edgekit.android_bench.remote_target``) in
``/data/local/tmp/edgekit/<run-id>/`` and reads its facts from ``getprop`` and sysfs: ``ro.product.model``,
``ro.soc.model`` (else ``ro.board.platform``), ``ro.product.cpu.abi``, ``ro.build.version.release``, each
core's ``cpuinfo_max_freq`` and the thermal zones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgekit.android_bench.adb import AdbClient, AdbDevice, DeviceEntry, state_problem
from edgekit.android_bench.remote_target import RemoteTarget
from edgekit.android_bench.results import DeviceFacts
from edgekit.android_bench.target import Target
from edgekit.errors import DeviceError, EdgekitError
from edgekit.progress import Progress

ANDROID_WORK_ROOT = "/data/local/tmp/edgekit"
_HOST_PORT = re.compile(r"^[\w.-]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$")


class AdbTarget(RemoteTarget):
    """One adb device. ``state`` is what discovery saw: a device that is not ``device`` (unauthorized,
    offline) fails at its first step with a message saying what to do."""

    def __init__(self, device: AdbDevice, *, state: str = "device", work_root: str = ANDROID_WORK_ROOT,
                 **options) -> None:
        super().__init__(device, work_root=work_root, **options)
        self.device = device
        self.serial = device.serial
        self.state = state

    def probe(self) -> dict:
        if self.state != "device":
            raise DeviceError(state_problem(self.device.serial, self.state))
        return super().probe()

    def facts_from_probe(self, probe: dict) -> DeviceFacts:
        props = probe["props"]
        release, sdk = props.get("ro.build.version.release"), props.get("ro.build.version.sdk")
        os_version = f"Android {release}" + (f" (SDK {sdk})" if sdk else "") if release else None
        emulated = (props.get("ro.kernel.qemu") == "1" or props.get("ro.boot.qemu") == "1"
                    or props.get("ro.hardware") in ("ranchu", "goldfish"))
        return DeviceFacts(
            target=self.name,
            serial=self.device.serial,
            model=props.get("ro.product.model") or None,
            soc=props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware") or None,
            abi=props.get("ro.product.cpu.abi") or probe["uname"],
            os_version=os_version,
            cores=probe["cores"],
            emulated=emulated,
        )


@dataclass
class DeviceListing:
    """One attached device for ``edgekit devices``: its adb state, and its facts when it is usable."""

    KIND: ClassVar[str] = "device"  # in its JSON with VERSION (report.to_json); edgekit report reads by it
    VERSION: ClassVar[int] = 1

    serial: str
    state: str
    facts: DeviceFacts | None = None
    tools: list[str] | None = None  # taskset, timeout, python3 where the device has them
    error: str | None = None


def list_devices(*, adb_path: str = "adb", server_port: int | None = None,
                 client: AdbClient | None = None) -> list[DeviceListing]:
    """Every device adb sees, with facts read from the usable ones (in parallel, one thread per device).

    Out: one DeviceListing per device, in adb's order; a device whose facts cannot be read carries the
    error instead. Raises DeviceError when adb is missing or fails.
    """
    client = client or AdbClient(adb_path, server_port=server_port)
    entries = client.devices()

    def describe(entry: DeviceEntry) -> DeviceListing:
        listing = DeviceListing(entry.serial, entry.state)
        if entry.state != "device":
            listing.error = state_problem(entry.serial, entry.state)
            return listing
        target = AdbTarget(client.device(entry.serial))
        try:
            listing.facts = target.facts()
            listing.tools = sorted(target.probe()["tools"])
        except EdgekitError as exc:
            listing.error = " ".join(str(exc).split())
        return listing

    if not entries:
        return []
    with ThreadPoolExecutor(max_workers=len(entries)) as pool:
        return list(pool.map(describe, entries))


def adb_targets(spec: str, client: AdbClient, **options) -> list[AdbTarget]:
    """The adb targets for ``adb``, ``adb:SERIAL`` or ``all``.

    ``adb``: the one usable device (error when there is none or several). ``adb:SERIAL``: that device;
    a ``HOST:PORT`` serial that is not attached yet is ``adb connect``-ed first. ``all``: every attached
    device, usable or not (the unusable ones fail in the fleet with their reason). ``options`` go to
    AdbTarget (benchmark_binary, run_id, download_binary, progress). Raises DeviceError.
    """
    entries = client.devices()
    if spec == "all":
        if not entries:
            raise DeviceError(_NO_DEVICE)
        return [AdbTarget(client.device(e.serial), state=e.state, **options) for e in entries]
    if spec == "adb":
        ready = [e for e in entries if e.state == "device"]
        if not entries:
            raise DeviceError(_NO_DEVICE)
        if len(ready) > 1:
            names = ", ".join(e.serial for e in ready)
            raise DeviceError(f"adb: several devices attached ({names}): pick one with --target adb:SERIAL, "
                              "or benchmark them all with --target all")
        if not ready:
            raise DeviceError(state_problem(entries[0].serial, entries[0].state) if len(entries) == 1 else
                              "adb: no usable device: " + "; ".join(state_problem(e.serial, e.state)
                                                                    for e in entries))
        return [AdbTarget(client.device(ready[0].serial), **options)]
    serial = spec.split(":", 1)[1]
    if not serial:
        raise DeviceError("adb: --target adb: needs a serial after the colon (see `edgekit devices`)")
    entry = next((e for e in entries if e.serial == serial), None)
    if entry is None and _HOST_PORT.match(serial):
        client.connect(serial)
        entry = next((e for e in client.devices() if e.serial == serial), None)
    if entry is None:
        known = ", ".join(e.serial for e in entries) or "none"
        raise DeviceError(f"adb:{serial}: device not found (attached: {known}); check `edgekit devices`")
    if entry.state != "device":
        raise DeviceError(state_problem(serial, entry.state))
    return [AdbTarget(client.device(serial), **options)]


_NO_DEVICE = ("adb: no device attached: plug in a phone with USB debugging enabled, or `adb connect HOST:PORT` "
              "for a network device")


def targets_from_spec(
    spec: str,
    *,
    benchmark_binary: str | Path | None = None,
    adb_path: str = "adb",
    server_port: int | None = None,
    run_id: str | None = None,
    download_binary: bool = False,
    progress: Progress | None = None,
    ssh_options: Sequence[str] = (),
    ssh_path: str = "ssh",
) -> list[Target]:
    """The targets a ``--target`` value names (``adb``, ``adb:SERIAL``, ``ssh:USER@HOST[:PORT]``, ``all``).

    In: the spec; ``benchmark_binary`` (a local benchmark_model / onnxruntime_perf_test for the device;
    else the per-ABI cache, then edgekit's runner on devices with python3); ``download_binary`` (fetch
    TFLite's prebuilt benchmark_model for the device's ABI when it is not cached); ``progress``;
    ``adb_path`` and ``server_port`` (a private adb server); ``ssh_options`` (extra ``-o`` style ssh
    arguments, e.g. ``["-i", KEY]``). Out: a list of Target, one per device. Raises DeviceError when adb is
    missing, no device matches, or the named device is not usable; EdgekitError for an unknown spec.
    """
    spec = spec.strip()
    options = {"benchmark_binary": benchmark_binary, "run_id": run_id, "download_binary": download_binary,
               "progress": progress}
    if spec.startswith("ssh:"):
        from edgekit.android_bench.ssh_target import SshTarget

        return [SshTarget.from_spec(spec, ssh_path=ssh_path, extra_options=ssh_options, **options)]
    if spec in ("adb", "all") or spec.startswith("adb:"):
        client = AdbClient(adb_path, server_port=server_port)
        return list(adb_targets(spec, client, **options))
    raise EdgekitError(f"unknown --target {spec!r}; use host, adb, adb:SERIAL, ssh:USER@HOST or all")
