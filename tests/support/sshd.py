"""A throwaway OpenSSH server on a free loopback port, as the SSH target of end-to-end tests:
its own host key and config, root allowed with the target key (and `password_user`, when
given, with its password). Missing sshd/ssh skips, except under CI, where it fails."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.servers import free_port, missing

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class Sshd:
    port: int
    dir: Path
    target_key: Path
    proc: subprocess.Popen[bytes]
    password_user: str | None


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def keygen(path: Path) -> str:
    """A new ed25519 key pair at `path`; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@contextmanager
def throwaway_sshd(d: Path, password_user: str | None = None) -> Iterator[Sshd]:
    """Run sshd with its files under `d` until the block ends."""
    if not Path(SSHD).exists() or not shutil.which("ssh"):
        missing("OpenSSH sshd/ssh not installed (apt-get install -y openssh-server openssh-client)")
    keygen(d / "host_key")
    target_pub = keygen(d / "target_key")
    (d / "authorized_keys").write_text(target_pub + "\n")
    port = free_port()
    (d / "sshd_config").write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {d / "host_key"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
AcceptEnv LANG LC_*
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    with open(d / "sshd.log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_port(port, proc)
    except RuntimeError as exc:
        missing(f"sshd did not start: {exc}: {(d / 'sshd.log').read_text()[-500:]}")
    try:
        yield Sshd(port, d, d / "target_key", proc, password_user)
    finally:
        proc.terminate()
        proc.wait(10)


def ssh_connection_toml(name: str, sshd: Sshd, *extra: str) -> str:
    """A `[[connections]]` entry for `sshd` as root with its target key, for group dev;
    `extra` lines are added as they are."""
    lines = [
        "[[connections]]",
        f'name = "{name}"',
        'type = "ssh"',
        'host = "127.0.0.1"',
        f"port = {sshd.port}",
        'username = "root"',
        f'private_key = "{sshd.target_key}"',
        'groups = ["dev"]',
        *extra,
    ]
    return "\n" + "\n".join(lines) + "\n"
