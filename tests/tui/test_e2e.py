"""End to end: real `psql` through a real gateway, the TUI (driven by Pilot) deciding.

A review rule holds `update`; the TUI, signed in as bob (dba) with a real token over the real
control socket, approves one held statement (psql then completes it) and denies another with
a reason that psql prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest
from support.gateway import has_actions
from textual.widgets import DataTable
from tui_fixtures import gateway_app, settle

from hoop.tui.screens.modals import Confirm

pytestmark = pytest.mark.needs_postgres

REVIEW = """
[[rules]]
name = "hold-updates"
action = "review"
statements = ["update"]
approvers = ["dba"]
timeout = "60s"
"""


def start_psql(gw: Any, token: str, sql: str) -> subprocess.Popen[str]:
    cmd = ["psql", f"host=127.0.0.1 port={gw.ports['postgres']} user=alice dbname=pg sslmode=disable", "-X", "-c", sql]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"},
    )


async def wait_pending(pilot: Any, count: int, timeout: float = 15.0) -> DataTable:
    app = pilot.app
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await settle(pilot, 1)
        table = app.screen.query_one("#queue", DataTable)
        pending = [table.get_row_at(i) for i in range(table.row_count) if str(table.get_row_at(i)[3]) == "pending"]
        if len(pending) >= count:
            return table
        app.poll()
        await pilot.pause(0.2)
    raise AssertionError("the held statement never reached the approval queue")


async def finish(pilot: Any, proc: subprocess.Popen[str], timeout: float = 20.0) -> tuple[str, str]:
    """Keep the app's event loop running while psql completes."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await pilot.pause(0.1)
    return proc.communicate(timeout=5)


async def test_tui_approves_and_denies_real_psql(make_gateway: Any) -> None:
    gw = make_gateway(REVIEW)
    alice, bob = gw.token("alice"), gw.token("bob")
    setup = gw.psql(
        "alice", alice, "create table tui_t(id int primary key, v int); insert into tui_t values (1, 1), (2, 2)"
    )
    assert setup.returncode == 0, setup.stderr
    app = gateway_app(gw, bob, poll=0.5, start="approvals")
    held = start_psql(gw, alice, "update tui_t set v = 10 where id = 1")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_pending(pilot, 1)
            assert app.who.user == "bob"
            await pilot.press("a")
            await pilot.pause()
            assert isinstance(app.screen, Confirm)  # asked, not yet approved
            await pilot.press("y")
            out, err = await finish(pilot, held)
            assert held.returncode == 0, err
            assert "UPDATE 1" in out

            denied = start_psql(gw, alice, "update tui_t set v = 20 where id = 2")
            await wait_pending(pilot, 1)
            assert app.screen.selected()["status"] == "approved"  # the selection stayed on the decided one
            await pilot.press("up", "d")  # the new request, listed first
            await pilot.pause()
            await pilot.press(*"not during the freeze", "enter")
            out, err = await finish(pilot, denied)
            assert denied.returncode != 0
            assert "not during the freeze" in err
    finally:
        for proc in (held,):
            if proc.poll() is None:
                proc.kill()
    check = gw.psql("alice", alice, "select v from tui_t order by id", "-At")
    assert check.stdout.split() == ["10", "2"]
    audit = json.dumps(gw.audit(until=has_actions("approval.approve", "approval.deny")))
    assert '"approval.approve"' in audit and '"approval.deny"' in audit and "bob" in audit
