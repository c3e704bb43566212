"""A throwaway PostgreSQL cluster for tests: md5, SCRAM and cleartext roles, TLS on, loopback only.

Reusable outside pytest fixtures: ``cluster = start_cluster(); ...; cluster.stop()``.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hoop.core.tlscert import write_self_signed

LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5432


class ClusterUnavailable(RuntimeError):
    """PostgreSQL server binaries are missing or the cluster did not start."""


@dataclass
class Cluster:
    host: str
    port: int
    bindir: Path
    root: Path  # temp folder holding data/, the socket, certs and the log
    superuser: str = "postgres"  # trust over loopback and the unix socket
    database: str = "postgres"
    # role -> password; md5_user must use md5, scram_user scram-sha-256, clear_user cleartext
    passwords: dict[str, str] = field(default_factory=dict)
    cafile: str = ""  # the server's self-signed certificate, valid for the name 'localhost' only
    _run_as: str | None = None

    @property
    def socket_dir(self) -> str:
        return str(self.root)

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL as the superuser over the unix socket; returns unaligned output."""
        cmd = [
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.socket_dir,
            "-p",
            str(self.port),
            "-U",
            self.superuser,
            "-d",
            database or self.database,
            "-c",
            sql,
        ]
        return _run(cmd, self._run_as, self.root).stdout

    def stop(self) -> None:
        try:
            _run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
                self._run_as,
                self.root,
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def find_bindir() -> Path | None:
    """Newest PostgreSQL server bin dir with initdb, pg_ctl and postgres."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    extra = [os.path.dirname(os.path.realpath(p)) for p in ("/usr/local/bin/initdb",) if os.path.exists(p)]
    for d in [*candidates, *extra]:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL_HOST, 0))
        return s.getsockname()[1]


def local_server_up(host: str = LOCAL_HOST, port: int = LOCAL_PORT) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def _run(cmd: list[str], user: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    # initdb and postgres refuse to run as root, so as root we become the postgres OS user.
    proc = subprocess.run(cmd, user=user, cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise ClusterUnavailable(f"{Path(cmd[0]).name} failed: {proc.stderr.strip()[-2000:]}")
    return proc


def _write_cert(root: Path) -> tuple[Path, Path]:
    # Only the name: verify-full must use host="localhost"; 127.0.0.1 fails the name check.
    return write_self_signed(root / "server.crt", root / "server.key", names=("localhost",), days=2)


HBA = """\
local all all trust
host all md5_user 127.0.0.1/32 md5
host all scram_user 127.0.0.1/32 scram-sha-256
host all clear_user 127.0.0.1/32 password
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 reject
"""


def start_cluster() -> Cluster:
    bindir = find_bindir()
    if bindir is None:
        raise ClusterUnavailable("no PostgreSQL server binaries (initdb/pg_ctl) found")
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="hoop-pgcluster-"))
    try:
        return _start(bindir, root, run_as)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _start(bindir: Path, root: Path, run_as: str | None) -> Cluster:
    crt, key = _write_cert(root)
    if run_as:
        pw = pwd.getpwnam(run_as)
        for p in (root, crt, key):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    root.chmod(0o700)
    data = root / "data"
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        run_as,
        root,
    )
    port = free_port()
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '{LOCAL_HOST}'\n"
            f"unix_socket_directories = '{root}'\nssl = on\n"
            f"ssl_cert_file = '{crt}'\nssl_key_file = '{key}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "shared_buffers = 16MB\nmax_connections = 40\n"
        )
    (data / "pg_hba.conf").write_text(HBA)
    _run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "start"],
        run_as,
        root,
    )
    cluster = Cluster(LOCAL_HOST, port, bindir, root, cafile=str(crt), _run_as=run_as)
    try:
        cluster.passwords = {u: secrets.token_urlsafe(12) for u in ("md5_user", "scram_user", "clear_user")}
        # One psql call = one session, so the SET applies to the CREATE ROLE after it.
        cluster.psql(
            "SET password_encryption = 'md5';"
            f"CREATE ROLE md5_user LOGIN PASSWORD '{cluster.passwords['md5_user']}';"
            "SET password_encryption = 'scram-sha-256';"
            f"CREATE ROLE scram_user LOGIN PASSWORD '{cluster.passwords['scram_user']}';"
            f"CREATE ROLE clear_user LOGIN PASSWORD '{cluster.passwords['clear_user']}';"
        )
        cluster.psql("CREATE DATABASE test")
    except BaseException:
        cluster.stop()
        raise
    return cluster
