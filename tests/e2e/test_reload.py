"""Reloading hoop.toml into a running gateway: SIGHUP and `hoop reload`.

Open psql-style (psycopg), MariaDB (PyMySQL) and SSH sessions keep working through a reload;
what the new file says applies to new logins; a file that does not load changes nothing and
the log says why.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from support import mariadb
from support.doors import Ssh, uniform_gateway
from support.gateway import ADMINS, GatewayProcess, has_actions
from support.mariadb import throwaway_database
from support.postgres import pg_connection_toml
from support.sshd import Sshd, keygen, throwaway_sshd
from support.waiting import eventually

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_mariadb, pytest.mark.needs_sshd]

BOB = '\n[[users]]\nname = "bob"\ngroups = ["dev", "dba"]\n'


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with throwaway_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database("reload") as name:
        yield name


@pytest.fixture(scope="module")
def alice_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("alice") / "key"
    keygen(key)
    return key


@pytest.fixture
def gw(
    tmp_path: Path, pg_target: dict[str, str], database: str, sshd: Sshd, alice_key: Path
) -> Iterator[GatewayProcess]:
    """The three doors (pg, my, web), alice and bob (dev), ada (admin); tokens for all three."""
    public = alice_key.with_suffix(".pub").read_text().strip()
    gw = uniform_gateway(tmp_path, public, pg_target, database, sshd)
    gw.config.write_text(gw.config.read_text() + ADMINS)
    gw.start()
    gw.issue_tokens("alice", "bob", "ada")
    yield gw
    gw.stop()


def rewrite(gw: GatewayProcess, old: str, new: str) -> None:
    text = gw.config.read_text()
    assert old in text
    gw.config.write_text(text.replace(old, new))


def pg(gw: GatewayProcess, user: str = "alice", connection: str = "pg") -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(user, gw.tokens[user], connection), autocommit=True, connect_timeout=10)


class Cat:
    """`ssh alice+web@gateway cat`: an open SSH session that echoes what it is sent."""

    def __init__(self, gw: GatewayProcess, key: Path) -> None:
        argv = Ssh(gw, key).argv("alice+web@127.0.0.1", "cat")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def echo(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().decode().strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_sighup_keeps_open_sessions_and_applies_the_file_to_new_logins(
    gw: GatewayProcess, pg_target: dict[str, str], alice_key: Path
) -> None:
    psql_session = pg(gw)
    mysql_session = mariadb.through(gw)
    ssh_session = Cat(gw, alice_key)
    try:
        assert ssh_session.echo("before") == "before"
        with pytest.raises(psycopg.OperationalError):  # not configured yet
            pg(gw, connection="pg2").close()
        # A new connection; bob removed.
        rewrite(gw, BOB, "")
        gw.config.write_text(gw.config.read_text() + pg_connection_toml(pg_target, name="pg2"))

        gw.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        events = gw.audit("--action", "config.reload", until=has_actions("config.reload"))

        assert gw.proc.poll() is None, gw.log()  # type: ignore[union-attr]
        changed = events[-1]["detail"]["changed"]
        assert "connection pg2 added" in changed and "user bob removed" in changed
        # The open sessions go on as they were.
        assert psql_session.execute("SELECT 41 + 1").fetchone() == (42,)
        with mysql_session.cursor() as cur:
            cur.execute("SELECT 6 * 7")
            assert cur.fetchone() == (42,)
        assert ssh_session.echo("after") == "after"
        # New logins see the new file.
        with pg(gw, connection="pg2") as fresh:
            assert fresh.execute("SELECT current_database()").fetchone() == (pg_target["database"],)
        with pytest.raises(psycopg.OperationalError, match="bob"):
            pg(gw, user="bob").close()
        with pytest.raises(pymysql.err.OperationalError):
            mariadb.through(gw, user="bob").close()
        assert "config reloaded" in gw.log()
    finally:
        psql_session.close()
        mysql_session.close()
        ssh_session.close()


def reader(gw: GatewayProcess) -> GatewayProcess:
    """The CLI on a copy of the current (loadable) file, for when the gateway's own is broken."""
    copy = gw.root / "readable.toml"
    copy.write_text(gw.config.read_text())
    return replace(gw, config=copy)


def test_sighup_with_a_broken_file_keeps_the_running_config_and_logs_why(gw: GatewayProcess) -> None:
    cli = reader(gw)
    with pg(gw) as session:
        rewrite(gw, BOB, "")
        gw.config.write_text(gw.config.read_text() + '\n[[connections]]\nname = "broken"\ntype = "postgres"\n')
        gw.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        events = cli.audit("--action", "config.reload_refused", until=has_actions("config.reload_refused"))
        assert "connections[" in events[-1]["detail"]["why"]
        eventually(lambda: _logged(gw, "config reload refused"))
        assert "connections[" in gw.log().split("config reload refused")[1].splitlines()[0]
        assert gw.proc.poll() is None  # type: ignore[union-attr]
        # The old configuration stays: bob still logs in, the open session still works.
        with pg(gw, user="bob") as bob:
            assert bob.execute("SELECT 1").fetchone() == (1,)
        assert session.execute("SELECT 2").fetchone() == (2,)
    assert not has_actions("config.reload")(cli.audit("--action", "config.reload", until=lambda e: True, timeout=0))


def _logged(gw: GatewayProcess, text: str) -> None:
    assert text in gw.log()


def test_hoop_reload_as_admin_applies_and_as_anyone_else_is_refused(gw: GatewayProcess) -> None:
    refused = gw.cli("reload", check=False, env={"HOOP_TOKEN": gw.tokens["alice"]})
    assert refused.returncode == 1 and "only admins may reload" in refused.stderr
    rewrite(gw, BOB, "")
    done = gw.cli("reload", env={"HOOP_TOKEN": gw.tokens["ada"]})
    assert "user bob removed" in done.stdout
    with pytest.raises(psycopg.OperationalError, match="bob"):
        pg(gw, user="bob").close()
    # A file that does not load is refused to the caller with the reason.
    cli = reader(gw)
    gw.config.write_text(gw.config.read_text() + '\n[[users]]\nname = "eve"\nrole = "x"\n')
    bad = cli.cli("reload", check=False, env={"HOOP_TOKEN": gw.tokens["ada"]})
    assert bad.returncode == 1 and "reload refused" in bad.stderr and "users[" in bad.stderr
    events = cli.audit(until=has_actions("config.reload", "config.reload_refused", "control.refused"))
    assert {"config.reload", "config.reload_refused", "control.refused"} <= {e["action"] for e in events}


def test_a_restart_only_change_is_reported_and_left_as_it_is(gw: GatewayProcess) -> None:
    cli = reader(gw)
    rewrite(gw, "[listen]\n", '[listen]\nmysql_unused = "x"\n')
    bad = cli.cli("reload", check=False, env={"HOOP_TOKEN": gw.tokens["ada"]})
    assert "unknown key" in bad.stderr  # validated fully, as at start
    rewrite(gw, 'mysql_unused = "x"\n', "")
    old = f'postgres = "127.0.0.1:{gw.ports["postgres"]}"'
    rewrite(gw, old, 'postgres = "127.0.0.1:1"')
    done = gw.cli("reload", env={"HOOP_TOKEN": gw.tokens["ada"]})
    assert "[listen] changed: needs a restart" in done.stdout
    with pg(gw) as session:  # still served where it was
        assert session.execute("SELECT 1").fetchone() == (1,)
