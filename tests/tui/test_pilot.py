"""Each area's key actions, driven by Pilot: what the screen shows and what reached the
gateway's control endpoint (a recording double here; tests/tui/test_e2e.py uses the real one)."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.widgets import DataTable, Static
from tui_fixtures import NOW, FakeControl, settle


def status_text(app: Any, selector: str) -> str:
    """The text a Static shows (rich renderables rendered as plain text)."""
    from rich.console import Console

    content = app.screen.query_one(selector, Static).content
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(content)
    return console.export_text()


async def test_approve_newest_first(make_app: Any, control: FakeControl) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#queue", DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(2)] == ["3", "2"]  # newest attention first
        evidence = status_text(app, "#evidence")
        assert "customers" in evidence and "hold-writes" in evidence and "4m30s left" in evidence
        await pilot.press("a", "y")
        await settle(pilot)
        assert control.calls == [("approve", {"id": 3, "reason": ""})]
        assert "#3 approved" in status_text(app, "#approvals-status")


async def test_deny_needs_reason(make_app: Any, control: FakeControl) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "d")
        await pilot.pause()
        await pilot.press("enter")  # empty reason: refused in the dialog
        await pilot.pause()
        assert control.calls == []
        await pilot.press(*"too risky", "enter")
        await settle(pilot)
        assert control.calls == [("deny", {"id": 2, "reason": "too risky"})]


async def test_approve_with_grant(make_app: Any, control: FakeControl) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await pilot.pause()
        await pilot.press("enter")  # default 30m
        await settle(pilot)
        assert control.calls == [("approve", {"id": 3, "reason": "grant 30m", "grant_seconds": 1800.0})]


async def test_own_request_refusal_is_shown(make_app: Any) -> None:
    alice = FakeControl(
        user="alice", groups=("dev", "dba"), refuse={"approve": "you cannot decide on your own request"}
    )
    app = make_app(ctl=alice)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a", "y")
        await settle(pilot)
        assert alice.calls[0][0] == "approve"
        assert "you cannot decide on your own request" in status_text(app, "#approvals-status")


async def test_new_request_rings_and_others_decisions_show(make_app: Any, history: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.bells == 0
        with history.store.lock:
            history.store.conn.execute(
                "INSERT INTO approvals(id, session_id, user, connection, statement, rule, reason, approvers, "
                "required, status, created, expires) VALUES (4, 6, 'dave', 'pg', 'delete from t where id=1', "
                "'hold-writes', 'r', '[\"dba\"]', 1, 'pending', ?, ?)",
                (NOW - 1, NOW + 299),
            )
            history.store.conn.execute(
                "UPDATE approvals SET status='approved', decided=?, decisions=? WHERE id=2",
                (NOW - 2, json.dumps(["carol"])),
            )
        app.poll()
        await settle(pilot)
        assert app.bells == 1
        table = app.screen.query_one("#queue", DataTable)
        rows = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[3]) for i in range(table.row_count)}
        assert rows["4"] == "pending" and rows["2"] == "approved"
        assert any("#2 approved by carol" in n.message for n in app._notifications)


async def test_kill_live_session_with_reason(make_app: Any, control: FakeControl) -> None:
    app = make_app(start="sessions")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await pilot.pause()
        await pilot.press(*"leaked creds", "enter")
        await settle(pilot)
        assert control.calls == [("kill", {"id": 6, "reason": "leaked creds"})]
        await pilot.press("down", "down", "k")  # session 4 has ended: nothing to kill
        await settle(pilot)
        assert len(control.calls) == 1


async def test_watch_db_session_log(make_app: Any) -> None:
    app = make_app(start="sessions")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        from textual.widgets import RichLog

        log = app.screen.query_one(RichLog)
        text = "\n".join(str(line.text) for line in log.lines)
        assert "select count(*) from orders" in text and "[review hold-writes]" in text


async def test_offline_banner_and_refused_action(make_app: Any) -> None:
    offline = FakeControl(online=False)
    app = make_app(start="approvals", ctl=offline)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        banner = status_text(app, "#banner")
        assert "LIVE ACTIONS UNAVAILABLE" in banner and "not running" in banner
        await pilot.press("a", "y")
        await settle(pilot)
        assert "not running" in status_text(app, "#approvals-status")
        await pilot.press("4")
        await settle(pilot)
        assert app.screen.query_one("#recordings", DataTable).row_count == 6  # history still opens
