"""pytest fixtures for the ssh tests: a real OpenSSH server on loopback, and links to it that can fail.

``sshd`` (module scope) starts ``sshd`` with a fresh host key and an authorized client key and yields
``(SshConnection, home)``; it skips where openssh-server is missing or the tests do not run as root (sshd's
privilege separation). ``flaky_connection(sshd, control_dir)`` is a connection to the same server through
``flaky_link.py`` (ssh's ProxyCommand), whose control files stall or cut the link. Test modules import
``sshd_fixture`` to register it.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from adb_fixtures import free_port

from edgekit.android_bench.ssh_target import SshConnection
from edgekit.errors import DeviceError

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
FLAKY_LINK = Path(__file__).with_name("flaky_link.py")


@pytest.fixture(name="sshd", scope="module")
def sshd_fixture(tmp_path_factory):
    if SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server/openssh-client not installed (apt-get install openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("starting sshd for the loopback test needs root (privilege separation)")
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)], check=True)
    shutil.copy(home / "client_key.pub", home / "authorized_keys")
    port = free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home}/host_key\nAuthorizedKeysFile {home}/authorized_keys\n"
        f"PidFile {home}/sshd.pid\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nPermitRootLogin prohibit-password\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.PIPE)
    options = ["-i", str(home / "client_key"), "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={home}/known_hosts"]
    connection = SshConnection(f"{getpass.getuser()}@127.0.0.1", port=port, extra_options=options)
    deadline = time.monotonic() + 10
    while True:
        try:
            connection.check_shell(["true"], 5, step="wait for sshd")
            break
        except DeviceError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.skip(f"sshd did not start: {process.stderr.read().decode(errors='replace')[-300:]}")
            time.sleep(0.1)
    yield connection, home
    process.terminate()
    process.wait(timeout=10)


def flaky_connection(sshd, control: Path) -> SshConnection:
    """A connection to the ``sshd`` fixture's server through flaky_link.py, controlled by files in ``control``."""
    connection, _ = sshd
    control.mkdir(parents=True, exist_ok=True)
    proxy = " ".join(shlex.quote(str(word)) for word in (sys.executable, FLAKY_LINK, control)) + " %h %p"
    return SshConnection(connection.destination, port=connection.port,
                         extra_options=[*connection.extra_options, "-o", f"ProxyCommand={proxy}"])


def running_from(directory: Path) -> list[int]:
    """The processes on this machine (the ssh board) whose command line names ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and str(directory) in cmdline:
            found.append(int(entry.name))
    return found
