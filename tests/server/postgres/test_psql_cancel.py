"""Ctrl-C in a real psql, in a real terminal (tmux), through the gateway: the running statement
is cancelled and the next one runs."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time

import pytest
from support.servers import missing

pytestmark = pytest.mark.needs_postgres


def _screen(name: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout


def _expect(name: str, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in (screen := _screen(name)):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; screen:\n{_screen(name)}")


def _type(name: str, line: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", name, "-l", line], check=True)
    subprocess.run(["tmux", "send-keys", "-t", name, "Enter"], check=True)


def test_ctrl_c_in_psql_cancels_the_running_statement_only(make_gateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not shutil.which("tmux"):
        missing("tmux is needed (scripts/test.sh installs it)")
    gw = make_gateway()
    token = gw.token("alice")
    dsn = f"host=127.0.0.1 port={gw.ports['postgres']} user=alice dbname=pg sslmode=disable"
    name = f"hoop-psql-{tmp_path.name}"[:60]
    command = f"env PGPASSWORD={shlex.quote(token)} psql -X {shlex.quote(dsn)}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "30", command], check=True)
    try:
        _expect(name, "pg=>")
        _type(name, "SELECT pg_sleep(30) \\g")  # (a trailing ; is a tmux separator)
        time.sleep(1)  # the statement is running upstream
        began = time.monotonic()
        subprocess.run(["tmux", "send-keys", "-t", name, "C-c"], check=True)
        _expect(name, "canceling statement due to user request")
        assert time.monotonic() - began < 10
        _type(name, "SELECT 'after' || '-cancel' AS next \\g")
        screen = _expect(name, "after-cancel")
        assert screen.count("canceling statement") == 1
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
