"""AdbClient and AdbDevice through the real adb client (Debian's adb 29) against simulated devices."""

from __future__ import annotations

import shutil

import pytest
from adb_fixtures import adb_fixture, free_port, sim_devices_fixture  # noqa: F401  (fixtures)

from edgekit.android_bench.adb import AdbClient, DeviceEntry, parse_devices_output
from edgekit.android_bench.shell import EXIT_MARKER, quote_argv, split_exit_marker
from edgekit.errors import DeviceError, DeviceTimeoutError

pytestmark = pytest.mark.skipif(shutil.which("adb") is None, reason="adb is not installed (apt-get install adb)")

NASTY_NAME = "my model 'v2'; touch PWNED $(id) `id` \"q\" & x.tflite"


# --- pure functions -----------------------------------------------------------------------------------


def test_parse_devices_output_reads_states_and_fields():
    text = (
        "List of devices attached\n"
        "0123456789ABCDEF       device usb:1-1 product:sunfish model:Pixel_4a device:sunfish transport_id:3\n"
        "127.0.0.1:5555         unauthorized transport_id:1\n"
        "emulator-5554          offline\n"
        "ZY22 no permissions (missing udev rules? user is in the plugdev group); "
        "see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:4\n\n"
    )
    entries = parse_devices_output(text)
    assert entries[0] == DeviceEntry("0123456789ABCDEF", "device", "sunfish", "Pixel_4a", "sunfish", "3")
    assert [(e.serial, e.state) for e in entries[1:3]] == [("127.0.0.1:5555", "unauthorized"),
                                                           ("emulator-5554", "offline")]
    assert entries[3].state.startswith("no permissions (missing udev rules?")
    assert entries[3].transport_id == "4"


def test_exit_marker_round_trip_and_quoting():
    assert split_exit_marker(f"out without newline{EXIT_MARKER}3\n") == ("out without newline", 3)
    assert split_exit_marker("truncated output") == ("truncated output", None)
    assert quote_argv(["a b", "it's", ";"]) == "'a b' 'it'\"'\"'s' ';'"


def test_missing_adb_binary_is_one_clear_error():
    with pytest.raises(DeviceError, match=r"adb: not found .*apt-get install adb"):
        AdbClient("/nonexistent/adb")


# --- through the real adb client ----------------------------------------------------------------------


def test_discovery_lists_each_state(adb, sim_devices):
    ok, = sim_devices(1, props={"ro.product.model": "Pixel 8", "ro.product.name": "shiba"})
    locked, = sim_devices(1, state="unauthorized")
    gone, = sim_devices(1, state="offline")
    states = {e.serial: e for e in adb.devices()}
    assert states[ok.address].state == "device"
    assert states[ok.address].model == "Pixel_8" and states[ok.address].product == "shiba"
    assert states[locked.address].state == "unauthorized"
    assert states[gone.address].state == "offline"


def test_shell_separates_stdout_stderr_and_keeps_exit_codes(adb, sim_devices):
    device = adb.device(sim_devices(1)[0].address)
    result = device.shell(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert result == (7, "out\n", "err\n")
    assert device.shell(["true"]).exit_code == 0
    crashed = device.shell(["sh", "-c", "kill -SEGV $$"])
    assert crashed.exit_code == 139


def test_shell_arguments_reach_the_device_literally(adb, sim_devices):
    sim, = sim_devices(1)
    device = adb.device(sim.address)
    words = [NASTY_NAME, "$HOME", "a\\b", "*", "", "--flag=x y"]
    result = device.shell(["printf", "[%s]\\n", *words])
    assert result.stdout.splitlines() == [f"[{w}]" for w in words]
    assert not list(sim.root.rglob("PWNED*"))


def test_push_and_pull_round_trip_with_a_hostile_file_name(adb, sim_devices, tmp_path):
    sim, = sim_devices(1)
    device = adb.device(sim.address)
    local = tmp_path / NASTY_NAME
    local.write_bytes(bytes(range(256)) * 1000)
    remote = f"/data/local/tmp/edgekit/test/{NASTY_NAME}"
    device.push(local, remote)
    assert sim.host_path(remote).read_bytes() == local.read_bytes()
    assert device.exists(remote)
    back = tmp_path / "back.bin"
    device.pull(remote, back)
    assert back.read_bytes() == local.read_bytes()
    device.rm_rf("/data/local/tmp/edgekit/test")
    assert not device.exists(remote)
    assert not list(sim.root.rglob("PWNED*"))


def test_getprop_single_and_all(adb, sim_devices):
    device = adb.device(sim_devices(1, props={"ro.soc.model": "Tensor G3"})[0].address)
    assert device.getprop("ro.soc.model") == "Tensor G3"
    assert device.getprop("ro.does.not.exist") == ""
    props = device.getprop()
    assert props["ro.product.cpu.abi"] == "arm64-v8a" and props["ro.soc.model"] == "Tensor G3"


@pytest.mark.parametrize("message", ["No space left on device", "couldn't create file: Read-only file system"])
def test_push_failure_names_device_step_and_reason(adb, sim_devices, tmp_path, message):
    sim, = sim_devices(1, push_fail=message, push_fail_match="/full/")
    local = tmp_path / "model.tflite"
    local.write_bytes(b"x" * 1000)
    with pytest.raises(DeviceError) as info:
        adb.device(sim.address).push(local, "/data/local/tmp/full/model.tflite", step="push model")
    text = str(info.value)
    assert text.startswith(f"adb:{sim.address}: push model failed: ") and text.endswith(message)
    assert "\n" not in text


def test_pull_of_a_missing_file_is_an_error(adb, sim_devices, tmp_path):
    sim, = sim_devices(1)
    with pytest.raises(DeviceError, match=rf"adb:{sim.address}: pull result failed: .*No such file"):
        adb.device(sim.address).pull("/data/local/tmp/nothing", tmp_path / "x", step="pull result")


def test_disconnect_mid_command_is_an_error_not_a_silent_success(adb, sim_devices):
    # adb 29 itself exits 0 with truncated output when the connection drops mid-command.
    sim, = sim_devices(1, disconnect_on="sleep 5", disconnect_after_s=0.3)
    device = adb.device(sim.address)
    with pytest.raises(DeviceError, match=rf"^adb:{sim.address}: run model: connection to the device was lost"):
        device.shell(["sh", "-c", "echo started; sleep 5; echo done"], step="run model")
    with pytest.raises(DeviceError, match=rf"^adb:{sim.address}: device is (offline|missing)|device.*not found"):
        device.require_ready()


def test_shell_timeout_names_device_and_step(adb, sim_devices):
    sim, = sim_devices(1)
    with pytest.raises(DeviceTimeoutError, match=rf"^adb:{sim.address}: slow step: no result after 0.5 s"):
        adb.device(sim.address).shell(["sleep", "5"], 0.5, step="slow step")


@pytest.mark.parametrize("state, hint", [("unauthorized", "Allow USB debugging"), ("offline", "reconnect")])
def test_unusable_device_errors_say_what_to_do(adb, sim_devices, state, hint):
    sim, = sim_devices(1, state=state)
    device = adb.device(sim.address)
    with pytest.raises(DeviceError, match=rf"^adb:{sim.address}: device is {state}: .*{hint}"):
        device.shell(["true"])
    with pytest.raises(DeviceError, match=rf"^adb:{sim.address}: device is {state}"):
        device.require_ready()


def test_connect_refused_is_an_error(adb):
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(DeviceError, match=rf"^adb:{address}: connect failed: .*{address}"):
        adb.connect(address)
