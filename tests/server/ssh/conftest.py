"""Real OpenSSH on both sides of the gateway.

- ``sshd`` (session): a throwaway OpenSSH server on a free loopback port (own host key and
  config) that accepts root with the target key, and user ``hoopt`` with a canary password.
- ``gateway`` (session): `hoop serve` as a subprocess with [listen] ssh and postgres, users
  alice (dev), bob (ops, approver) and connections web1 (key file), web2 (password),
  web3 (key in ${HOOP_TEST_KEY}; web1 and web3 allow shells explicitly, as the command rules
  cover every connection), db (postgres on 127.0.0.1:5432), locked (no file
  transfer, no forwarding), down (a port nothing listens on) and mdb (the local MariaDB's
  `test` database, through [listen] mysql). SQL rules: `sql-no-drop` blocks DROP of
  sqlexec_keep, `hold-sql-updates` holds UPDATEs of sqlexec_held for group ops.
  Attributes: ssh(...), token(user), run_hoop(...), logs().

Missing sshd/ssh skips, except under CI (env ``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[3]
HOOP = ROOT / ".venv" / "bin" / "hoop"
CANARY_PASSWORD = "Canary-" + secrets.token_hex(8)


from support.servers import free_port  # noqa: E402
from support.sshd import Sshd, keygen, ssh_connection_toml, throwaway_sshd, wait_port  # noqa: E402


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with throwaway_sshd(tmp_path_factory.mktemp("sshd"), _password_user()) as server:
        yield server


def _password_user() -> str | None:
    """A local user with the canary password (needs root; otherwise password tests skip)."""
    if os.geteuid() != 0:
        return None
    name = "hoopt"
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{CANARY_PASSWORD}\n", text=True, check=True)
    return name


@dataclass
class Gateway:
    dir: Path
    config: Path
    ssh_port: int
    pg_port: int
    client_key: Path
    proc: subprocess.Popen
    sshd: Sshd
    env: dict[str, str] = field(default_factory=dict)

    @property
    def recordings(self) -> Path:
        return self.dir / "recordings"

    def ssh_args(self, user: str, *extra: str, key: bool = True) -> list[str]:
        args = [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.ssh_port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=no",
        ]
        if key:
            args += ["-o", "IdentitiesOnly=yes", "-i", str(self.client_key), "-o", "PasswordAuthentication=no"]
        else:
            args += ["-o", "PubkeyAuthentication=no", "-o", "IdentitiesOnly=yes"]
        return args + list(extra) + [f"{user}@127.0.0.1"]

    def ssh(
        self, user: str, *command: str, extra: tuple[str, ...] = (), input: bytes | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.ssh_args(user, *extra) + list(command), input=input, capture_output=True, timeout=timeout
        )

    def run_hoop(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(HOOP), *args, "-c", str(self.config)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **self.env, **(env or {})},
        )

    def token(self, user: str) -> str:
        out = self.run_hoop("token", "issue", user, "--ttl", "1h")
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    def logs(self) -> str:
        return (self.dir / "gateway.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def gateway(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    d = tmp_path_factory.mktemp("gateway")
    client_pub = keygen(d / "alice_key")
    ssh_port, pg_port, mysql_port, closed_port = free_port(), free_port(), free_port(), free_port()
    password_conn = ""
    if sshd.password_user:
        password_conn = f"""
[[connections]]
name = "web2"
type = "ssh"
host = "127.0.0.1"
port = {sshd.port}
username = "{sshd.password_user}"
password = "${{HOOP_TEST_PASSWORD}}"
groups = ["dev"]
"""
    config = d / "hoop.toml"
    config.write_text(f"""
[gateway]
data_dir = "{d / "data"}"
recordings_dir = "{d / "recordings"}"
log_level = "info"

[listen]
ssh = "127.0.0.1:{ssh_port}"
postgres = "127.0.0.1:{pg_port}"
mysql = "127.0.0.1:{mysql_port}"

[[users]]
name = "alice"
groups = ["dev"]
ssh_keys = ["{client_pub}"]

[[users]]
name = "bob"
groups = ["ops"]
{ssh_connection_toml("web1", sshd, "allow_file_transfer = true", "record_input = false", 'shell = "allow"')}
[[connections]]
name = "web3"
type = "ssh"
host = "127.0.0.1"
port = {sshd.port}
username = "root"
private_key = "${{HOOP_TEST_KEY}}"
groups = ["dev"]
ssh_client = "openssh"
shell = "allow"

[[connections]]
name = "tunnel"
type = "ssh"
host = "127.0.0.1"
port = {sshd.port}
username = "root"
private_key = "{sshd.target_key}"
groups = ["dev"]
allow_port_forwarding = true

[[connections]]
name = "locked"
type = "ssh"
host = "127.0.0.1"
port = {sshd.port}
username = "root"
private_key = "{sshd.target_key}"
groups = ["dev"]

[[connections]]
name = "locked2"
type = "ssh"
host = "127.0.0.1"
port = {sshd.port}
username = "root"
private_key = "{sshd.target_key}"
groups = ["dev"]
ssh_client = "openssh"
{password_conn}
[[connections]]
name = "down"
type = "ssh"
host = "127.0.0.1"
port = {closed_port}
username = "root"
private_key = "{sshd.target_key}"
groups = ["dev"]
connect_timeout = 3

[[connections]]
name = "db"
type = "postgres"
host = "127.0.0.1"
port = 5432
username = "postgres"
database = "test"
sslmode = "disable"
groups = ["dev"]

[[connections]]
name = "mdb"
type = "mysql"
host = "127.0.0.1"
port = 3306
username = "root"
database = "test"
sslmode = "disable"
groups = ["dev"]

[[rules]]
name = "sql-no-drop"
action = "block"
statements = ["drop"]
tables = ["sqlexec_keep"]

[[rules]]
name = "hold-sql-updates"
action = "review"
statements = ["update"]
tables = ["sqlexec_held"]
approvers = ["ops"]
timeout = "60s"

[[rules]]
name = "no-rm"
action = "block"
commands = ["rm"]

[[rules]]
name = "hold-hostname"
action = "review"
commands = ["hostname"]
approvers = ["ops"]
timeout = "60s"
""")
    env = {**os.environ, "HOOP_TEST_KEY": sshd.target_key.read_text(), "HOOP_TEST_PASSWORD": CANARY_PASSWORD}
    log = open(d / "gateway.log", "wb")
    proc = subprocess.Popen([str(HOOP), "serve", "-c", str(config)], stdout=log, stderr=log, env=env, cwd=d)
    try:
        wait_port(ssh_port, proc, 30)
    except RuntimeError as exc:
        pytest.fail(f"gateway did not start: {exc}\n{(d / 'gateway.log').read_text()[-3000:]}")
    gw = Gateway(d, config, ssh_port, pg_port, d / "alice_key", proc, sshd, env)
    yield gw
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
