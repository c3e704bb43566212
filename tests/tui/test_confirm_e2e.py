"""Against the real gateway: two statements held, the approver presses approve and confirm
twice in a row. One request is approved (its psql completes), the other still waits, and the
selection stays on the approved one."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_e2e import REVIEW, finish, start_psql, wait_pending
from tui_fixtures import gateway_app, settle

pytestmark = pytest.mark.needs_postgres


async def test_double_press_approves_one_request(make_gateway: Any) -> None:
    gw = make_gateway(REVIEW)
    alice, bob = gw.token("alice"), gw.token("bob")
    setup = gw.psql("alice", alice, "create table twice_t(id int, v int); insert into twice_t values (1, 1)")
    assert setup.returncode == 0, setup.stderr
    app = gateway_app(gw, bob, poll=0.2, start="approvals")
    first = start_psql(gw, alice, "update twice_t set v = 10 where id = 1")
    second = start_psql(gw, alice, "update twice_t set v = 20 where id = 1")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_pending(pilot, 2)
            chosen = app.screen.selected()["id"]
            await pilot.press("a", "y")
            deadline = time.monotonic() + 15
            while app.screen.selected()["status"] != "approved":  # the poll brings the decision back
                assert time.monotonic() < deadline, "the approval never showed"
                await settle(pilot, 1)
                await pilot.pause(0.1)
            await pilot.press("a", "y")  # the same keys again: the selection is still on the decided one
            await settle(pilot)
            await pilot.pause(0.5)
            await settle(pilot)
            assert app.screen.selected()["id"] == chosen
            deadline = time.monotonic() + 10
            while first.poll() is None and second.poll() is None and time.monotonic() < deadline:
                await pilot.pause(0.1)
            await pilot.pause(0.5)
            finished = [p for p in (first, second) if p.poll() is not None]
            assert len(finished) == 1, "both held statements ran, or neither"
            out, err = await finish(pilot, finished[0])
            assert "UPDATE 1" in out, err
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
    rows = json.loads(gw.cli("approvals", "--json", "--all").stdout)
    assert [r["id"] for r in rows if r["status"] == "approved"] == [chosen], rows
