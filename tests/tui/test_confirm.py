"""The console asks before it acts: approve, deny, grant, kill, a rule switched on or off, saved
or removed each show a dialog naming what they act on; `n` or Escape cancels, `y` acts, and
after a decision the selection stays on the decided request."""

from __future__ import annotations

import json
from typing import Any

from test_pilot import status_text
from textual.widgets import DataTable, TextArea
from tui_fixtures import NOW, FakeControl, settle

from hoop.tui.screens.approvals import ApprovalsScreen
from hoop.tui.screens.modals import AskText, Confirm


def selected_id(app: Any) -> str:
    table = app.screen.query_one("#queue", DataTable)
    return str(table.get_row_at(table.cursor_row)[0])


async def test_one_key_press_does_not_approve(make_app: Any, control: FakeControl) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert control.calls == [] and isinstance(app.screen, Confirm)
        details = status_text(app, "#confirm-details")
        for shown in ("#3", "alice (session 5)", "pg (postgres)", "hold-writes", "update customers set email"):
            assert shown in details, details
        await pilot.press("n")
        await pilot.press("a", "escape")
        await pilot.press("a", "enter")  # the focus is on No: a stray Enter cancels
        await settle(pilot)
        assert control.calls == [] and isinstance(app.screen, ApprovalsScreen)
        await pilot.press("a", "y")
        await settle(pilot)
        assert control.calls == [("approve", {"id": 3, "reason": ""})]


async def test_double_press_decides_one_request_and_the_cursor_stays(
    make_app: Any, control: FakeControl, history: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert selected_id(app) == "3"
        await pilot.press("a", "a", "y")  # the second `a` lands in the dialog and means nothing
        await settle(pilot)
        with history.store.lock:  # the gateway records the decision; the console polls it
            history.store.conn.execute(
                "UPDATE approvals SET status = 'approved', decided = ?, decisions = ? WHERE id = 3",
                (NOW, json.dumps(["bob"])),
            )
        app.poll()
        await settle(pilot)
        assert selected_id(app) == "3"  # the decided request, not the next waiting one
        await pilot.press("a", "y")
        await settle(pilot)
        assert not isinstance(app.screen, Confirm)
        assert control.calls == [("approve", {"id": 3, "reason": ""})]  # #2 was never approved
        assert any("#3 is already approved" in n.message for n in app._notifications)


async def test_deny_and_grant_name_the_request(make_app: Any, control: FakeControl) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "d")
        await settle(pilot)
        assert isinstance(app.screen, AskText)
        details = status_text(app, "#ask-details")
        assert "#2" in details and "update orders set status = 'void'" in details
        await pilot.press("escape", "g")
        await settle(pilot)
        assert "#2" in status_text(app, "#ask-details")
        await pilot.press("escape")
        await settle(pilot)
        assert control.calls == []


async def test_kill_names_the_session(make_app: Any, control: FakeControl) -> None:
    app = make_app(start="sessions")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        details = status_text(app, "#ask-details")
        assert "Session    6" in details and "bob" in details and "pg (postgres)" in details
        await pilot.press("escape")
        await settle(pilot)
        assert control.calls == []


async def test_space_on_a_rule_asks_first(make_app: Any, control: FakeControl) -> None:
    app = make_app(start="rules")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert control.calls == [] and isinstance(app.screen, AskText)
        assert "Disable guardrail hold-writes?" in str(app.screen.query_one(".dialog-title").render())
        assert "+enabled = false" in status_text(app, "#ask-details")
        await pilot.press("escape")
        await settle(pilot)
        assert control.calls == []
        await pilot.press("space", *"night", "space", *"shift", "enter")
        await settle(pilot)
        assert control.calls[0] == ("rules.disable", {"kind": "guard", "name": "hold-writes", "reason": "night shift"})


async def test_rule_edit_shows_the_diff_before_saving(make_app: Any, control: FakeControl) -> None:
    app = make_app(start="rules")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        area = app.screen.query_one(TextArea)
        area.text = area.text.replace('approvers = ["dba"]', 'approvers = ["dba", "sre"]') + 'timeout = "10m"\n'
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert control.calls == [] and isinstance(app.screen, Confirm)
        diff = status_text(app, "#confirm-details")
        assert "--- hold-writes (saved)" in diff and "+++ hold-writes (to save)" in diff
        assert '-approvers = ["dba"]' in diff and '+approvers = ["dba", "sre"]' in diff and '+timeout = "10m"' in diff
        assert '-name = "hold-writes"' not in diff and ' name = "hold-writes"' in diff  # context, unchanged
        await pilot.press("escape")
        await settle(pilot)
        assert control.calls == [] and isinstance(app.screen.query_one(TextArea), TextArea)  # back in the editor
        await pilot.press("ctrl+s", "y")
        await settle(pilot)
        assert control.calls[0][1]["body"]["timeout"] == "10m"
