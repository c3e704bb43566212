"""The console the gateway starts for `ssh -t bob+tui@gateway` gets only what it needs: no
upstream secret in its environment (the gateway's connection password comes from a variable
holding a canary), and a token that expires within minutes unless the running console keeps
it alive. It still signs in and approves."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from support.servers import free_port
from test_e2e import REVIEW, start_psql
from test_ssh_e2e import Tmux, login, ssh_argv, tmux_ok  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_sshd]

ALLOWED = {"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "TERM", "COLORTERM", "HOOP_TOKEN"}


def children(pid: int) -> list[int]:
    """Every process below `pid`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                found.append(child)
                todo.append(child)
    return found


def console_process(gw: Any) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for pid in children(gw.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"hoop.cli" in argv and b"tui" in argv:
                return pid
        time.sleep(0.1)
    raise AssertionError("no console process under the gateway")


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if item)


@pytest.mark.usefixtures("tmux_ok")
def test_console_child_has_no_upstream_secret_and_a_short_lived_token(
    make_gateway: Any, pg_target: dict[str, str]
) -> None:
    canary = pg_target["password"]
    gw = make_gateway(REVIEW, listen={"postgres": free_port(), "ssh": free_port()})
    assert gw.env["HOOP_TEST_PG_PASSWORD"] == canary and canary.startswith("CANARY")
    assert canary.encode() in Path(f"/proc/{gw.proc.pid}/environ").read_bytes()  # the gateway has it
    alice = gw.token("alice")
    assert gw.psql("alice", alice, "create table env_t(id int, v int); insert into env_t values (1, 1)").returncode == 0
    term = Tmux(f"hoop-tui-env-{os.getpid()}", ssh_argv(gw.ports["ssh"], "bob") + ["; sleep 30"])
    held = None
    try:
        login(term, gw.token("bob"))
        term.expect("signed in as bob")  # the console's token works at the control endpoint
        pid = console_process(gw)
        env = environ(pid)
        leaked = canary in "\0".join(f"{k}={v}" for k, v in env.items())
        assert not leaked, "the upstream password reached the console's environment"
        assert set(env) - ALLOWED == {k for k in env if k.startswith("LC_")}, sorted(env)
        token_id = env["HOOP_TOKEN"].split("_")[1]
        db = sqlite3.connect(gw.root / "data" / "hoop.db")
        [(created, expires, note)] = db.execute(
            "SELECT created, expires, note FROM tokens WHERE id = ?", (token_id,)
        ).fetchall()
        db.close()
        assert note == "ssh tui session" and 0 < expires - time.time() <= 300 and expires - created <= 300

        held = start_psql(gw, alice, "update env_t set v = 2 where id = 1")
        term.expect("pending")
        term.keys("a")
        term.expect("Approve request #")
        term.keys("y")
        out, err = held.communicate(timeout=20)
        assert "UPDATE 1" in out, err
    finally:
        if held is not None and held.poll() is None:
            held.kill()
        term.close()
