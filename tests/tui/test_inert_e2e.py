"""A hostile statement held for review, through a real gateway and psql: the approver's TUI and
every CLI listing show it inert (escape sequences visible, markup literal), and the TUI does
not crash on it.

The user and the rule name are hostile too: user names come from identity providers and rule
names are typed by people (a user who logs in can only carry markup: every door refuses a
login name with control characters).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest
from support.inert import (
    HOSTILE_RULE,
    LOGIN_USER,
    SHOWN,
    SHOWN_RULE,
    STATEMENT,
    assert_inert,
    toml_string,
)
from textual.widgets import DataTable
from tui_fixtures import gateway_app, screen_output, settle

pytestmark = pytest.mark.needs_postgres

CONFIG = f"""
[[users]]
name = {toml_string(LOGIN_USER)}
groups = ["dev"]

[[rules]]
name = {toml_string(HOSTILE_RULE)}
action = "review"
statements = ["update"]
approvers = ["dba"]
timeout = "60s"
"""


def start_psql(gw: Any, user: str, token: str, sql: str) -> subprocess.Popen[str]:
    dsn = f"host=127.0.0.1 port={gw.ports['postgres']} user={user} dbname=pg sslmode=disable"
    return subprocess.Popen(
        ["psql", dsn, "-X", "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"},
    )


def wait_held(gw: Any, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(gw.cli("approvals", "--json").stdout)
        if rows:
            return dict(rows[0])
        time.sleep(0.2)
    raise AssertionError("the statement was never held")


async def test_hostile_statement_is_inert_in_the_tui_and_every_cli_listing(make_gateway: Any) -> None:
    gw = make_gateway(CONFIG)
    mallory, bob = gw.token(LOGIN_USER), gw.token("bob")
    held = start_psql(gw, LOGIN_USER, mallory, STATEMENT)
    try:
        request = wait_held(gw)
        assert request["statement"] == STATEMENT, "the store keeps the exact text"

        listing = gw.cli("approvals").stdout
        assert_inert(listing, SHOWN["osc52"], LOGIN_USER, SHOWN_RULE)

        app = gateway_app(gw, bob, poll=0.5, start="approvals")
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#queue", DataTable)
            assert table.row_count == 1
            raw, shown = screen_output(app)
            assert_inert(raw, keep="\n\x1b")  # Textual's own styling is CSI sequences only
            assert "\x1b]" not in raw and "\x1bP" not in raw, "no OSC or DCS sequence reaches the terminal"
            flat = " ".join(shown.split())
            for piece in ('update "x[/]y"', "where id > 0", *SHOWN.values(), LOGIN_USER, SHOWN_RULE):
                assert piece in flat, piece
            await pilot.press("d")
            await pilot.pause()
            await pilot.press(*"no [/]", "enter")
            deadline = time.monotonic() + 20
            while held.poll() is None and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert app.is_running, "the console is still up"
        _out, err = held.communicate(timeout=5)
        assert held.returncode != 0 and "no [/]" in err
    finally:
        if held.poll() is None:
            held.kill()

    events = gw.audit(until=lambda ev: {"approval.request", "approval.deny"} <= {e["action"] for e in ev})
    assert any(e["detail"].get("text") == STATEMENT for e in events)
    audit = gw.cli("audit").stdout  # one line per event: the statement is cut after its start
    assert_inert(audit, SHOWN["osc52"], LOGIN_USER, SHOWN_RULE)

    sessions = gw.cli("sessions").stdout
    assert_inert(sessions, LOGIN_USER)

    replay = gw.cli("replay", str(request["session_id"])).stdout
    assert_inert(replay, *SHOWN.values(), LOGIN_USER, SHOWN_RULE)
