"""Each area at 80x24 and 120x40 with deterministic data (fixed clock, fixed store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tui_fixtures import NOW, add_hostile_rows, settle

AREAS = ["sessions", "approvals", "rules", "recordings"]
SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("area", AREAS)
def test_area(snap_compare: Any, make_app: Any, area: str, size: tuple[int, int]) -> None:
    async def ready(pilot: Any) -> None:
        from textual.widgets import DataTable

        await settle(pilot)
        pilot.app.screen.query(DataTable).first().focus()  # the same focus on every run
        pilot.app.clear_notifications()
        await pilot.wait_for_scheduled_animations()
        await settle(pilot)

    assert snap_compare(make_app(start=area), terminal_size=size, run_before=ready)


def test_replay_db(snap_compare: Any, make_app: Any) -> None:
    async def ready(pilot: Any) -> None:
        from hoop.tui.screens.replay import ReplayScreen

        await settle(pilot)
        pilot.app.push_screen(ReplayScreen(pilot.app.history.session(1)))
        await settle(pilot)
        for key in ("right_square_bracket", "right"):
            await pilot.press(key)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(start="recordings"), terminal_size=(80, 24), run_before=ready)


def test_replay_ssh(snap_compare: Any, make_app: Any, tmp_path: Path) -> None:
    async def ready(pilot: Any) -> None:
        from hoop.tui.screens.replay import ReplayScreen

        await settle(pilot)
        pilot.app.push_screen(ReplayScreen(pilot.app.history.session(3)))
        await settle(pilot)
        await pilot.press("end")
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(start="recordings"), terminal_size=(80, 24), run_before=ready)


def test_hostile_approval(snap_compare: Any, make_app: Any, history: Any) -> None:
    """A held statement, user, connection and rule carrying escape sequences and markup: shown
    literally, escapes in reverse video (tests/support/inert.py has the text)."""
    add_hostile_rows(history)

    async def ready(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("#queue").focus()
        pilot.app.clear_notifications()
        await settle(pilot)

    assert snap_compare(make_app(start="approvals"), terminal_size=(120, 40), run_before=ready)


def test_confirm_approve(snap_compare: Any, make_app: Any) -> None:
    """Approve asks first, naming the request and showing its statement."""

    async def ready(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.press("a")
        await settle(pilot)

    assert snap_compare(make_app(start="approvals"), terminal_size=(80, 24), run_before=ready)


def test_confirm_rule_diff(snap_compare: Any, make_app: Any) -> None:
    """Saving an edited rule shows the change as a diff first."""

    async def ready(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        area = pilot.app.screen.query_one("TextArea")
        area.text = area.text.replace('["update", "delete"]', '["update", "delete", "insert"]')
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(make_app(start="rules"), terminal_size=(120, 40), run_before=ready)


def test_decided_request_80x24(snap_compare: Any, make_app: Any, history: Any) -> None:
    """A cancelled request at 80x24: its status whole, its wait stopped at the decision."""
    with history.store.lock:
        history.store.conn.execute(
            "INSERT INTO approvals(id, session_id, user, connection, statement, rule, reason, approvers, "
            "required, status, created, expires, decided, decisions) VALUES (9, 6, 'bob', 'pg', "
            "'delete from orders where id = 1', 'hold-writes', 'r', '[\"dba\"]', 1, 'cancelled', ?, ?, ?, '[]')",
            (NOW - 200, NOW + 100, NOW - 150),
        )

    async def ready(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("#queue").focus()
        await pilot.press("down", "down")  # to the cancelled request
        pilot.app.clear_notifications()
        await settle(pilot)

    assert snap_compare(make_app(start="approvals"), terminal_size=(80, 24), run_before=ready)
