"""The console follows the caller's roles (from the gateway's `whoami`): the Sessions and
Approvals lists show only what the caller may act on or read, and the rule editor's changes
are offered to admins only. The gateway enforces the same for every action
(tests/e2e/test_roles.py)."""

from __future__ import annotations

from typing import Any

from test_pilot import status_text
from textual.widgets import DataTable
from tui_fixtures import FakeControl, settle


def listed(app: Any, table: str) -> list[str]:
    rows = app.screen.query_one(table, DataTable)
    return sorted(str(key.value) for key in rows.rows)


async def test_an_approver_sees_the_sessions_and_requests_of_their_rules(make_app: Any) -> None:
    ssh_approver = FakeControl(roles=("approver",), scope={"rules": ["hold-shell"], "connections": ["web*"]})
    app = make_app(start="sessions", ctl=ssh_approver)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "as approver" in status_text(app, "#banner")
        assert listed(app, "#sessions") == ["3", "6"]  # alice on web1, and bob's own session
    app = make_app(start="approvals", ctl=ssh_approver)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert listed(app, "#queue") == []  # every request is of hold-writes, not his rule

    app = make_app(start="recordings", ctl=ssh_approver)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert listed(app, "#recordings") == ["3", "6"]  # no replay of sessions outside the scope
        await pilot.press("slash", *"select")  # nor found by what they ran
        await settle(pilot)
        assert set(listed(app, "#recordings")) <= {"3", "6"}

    pg_approver = FakeControl(roles=("approver",), scope={"rules": ["hold-writes"], "connections": ["pg"]})
    app = make_app(start="approvals", ctl=pg_approver)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert listed(app, "#queue") == ["2", "3"]
    app = make_app(start="sessions", ctl=pg_approver)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert listed(app, "#sessions") == ["1", "2", "5", "6"]


async def test_an_auditor_sees_everything_and_is_offered_no_rule_change(make_app: Any) -> None:
    auditor = FakeControl(user="audrey", groups=("security",), roles=("auditor",))
    app = make_app(start="sessions", ctl=auditor)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert listed(app, "#sessions") == ["1", "2", "3", "4", "5", "6"]
    app = make_app(start="rules", ctl=auditor)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key in ("space", "x", "n", "m"):
            await pilot.press(key)
            await settle(pilot)
        assert auditor.calls == [] and app.screen.query("#rules")  # still the list, nothing sent


async def test_a_user_without_a_role_sees_only_their_own(make_app: Any) -> None:
    nobody = FakeControl(user="alice", groups=("dev",), roles=())
    app = make_app(start="sessions", ctl=nobody)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert listed(app, "#sessions") == ["1", "3", "5"]
        assert "as no role" in status_text(app, "#banner")
    app = make_app(start="recordings", ctl=nobody)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert listed(app, "#recordings") == ["1", "3", "5"]
