"""Every area of the console shows hostile text inert: a user name, a connection name, a rule
name, a statement, a server error, result values and terminal output that carry escape
sequences or Textual markup are shown literally, never sent to the terminal or interpreted."""

from __future__ import annotations

import re
from typing import Any

import pytest
from support.inert import HOSTILE_RULE, HOSTILE_USER, MARKUP, SHOWN, SHOWN_RULE, SHOWN_USER, assert_inert
from tui_fixtures import SERVER_ERROR, SHOWN_CONN, FakeControl, add_hostile_rows, screen_output, settle

from hoop.tui.screens.replay import ReplayScreen
from hoop.tui.screens.sessions import WatchScreen


@pytest.fixture
def hostile(history: Any) -> Any:
    add_hostile_rows(history)
    return history


def assert_screen_inert(app: Any, *shown: str) -> str:
    """The terminal receives only the console's own CSI styling; the text shows `shown`."""
    raw, text = screen_output(app)
    assert_inert(raw, keep="\n\x1b")
    assert "\x1b]" not in raw and "\x1bP" not in raw, "no OSC or DCS sequence reaches the terminal"
    flat = " ".join(re.sub("[\u2500-\u257f▁▔▊▎]", " ", text).split())  # one line, borders left out
    for piece in shown:
        assert piece in flat, f"{piece!r} not on screen:\n{text}"
    return text


async def test_approvals_evidence(hostile: Any, make_app: Any) -> None:
    app = make_app(start="approvals")
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        assert app.screen.selected()["id"] == 4
        assert_screen_inert(app, 'update "x[/]y"', "where id > 0", *SHOWN.values(), SHOWN_USER, SHOWN_RULE, SHOWN_CONN)


async def test_refusals_and_identity_with_markup(hostile: Any, make_app: Any) -> None:
    control = FakeControl(user=HOSTILE_USER, groups=(HOSTILE_RULE,), refuse={"approve": SERVER_ERROR})
    app = make_app(start="approvals", ctl=control)
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert_screen_inert(app, SHOWN_USER, SHOWN_RULE, SHOWN_CONN)  # the confirmation names them inert
        await pilot.press("y")
        await settle(pilot)
        assert control.calls == [("approve", {"id": 4, "reason": ""})]
        assert_screen_inert(app, SHOWN_USER, SHOWN_RULE, "does not exist [/]", SHOWN["osc52"])


async def test_sessions_and_watch(hostile: Any, make_app: Any) -> None:
    app = make_app(start="sessions")
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        assert_screen_inert(app, r"mal\x1b[", r"pg\x1b[2K")
        app.push_screen(WatchScreen(app.history.session(7)))
        await settle(pilot)
        assert_screen_inert(app, SHOWN_USER, SHOWN_CONN, SHOWN["osc52"], MARKUP, "does not exist [/]")


async def test_rules_list_editor_and_preview(hostile: Any, make_app: Any) -> None:
    app = make_app(start="rules")
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        assert_screen_inert(app, r"hold\x1b]0;", r"mal\x1b[8m", r"rev\u202e")
        table = app.screen.query_one("#rules")
        row = next(i for i in range(table.row_count) if "rev" in str(table.get_row_at(i)[2]))
        table.move_cursor(row=row)
        await pilot.press("enter")
        await settle(pilot)
        assert_screen_inert(app, r'name = "rev\u202eevil\u202c\u009b2J"')
        await pilot.press("escape")
        await settle(pilot)
        row = next(i for i in range(table.row_count) if "hold" in str(table.get_row_at(i)[2]))
        table.move_cursor(row=row)
        await pilot.press("enter")
        await settle(pilot)
        assert_screen_inert(app, r"\x1b]52;c;", "REVIEW", SHOWN_USER)


async def test_recordings_and_replays(hostile: Any, make_app: Any) -> None:
    app = make_app(start="recordings")
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        assert_screen_inert(app, r"mal\x1b[", r"pg\x1b[2K")
        app.push_screen(ReplayScreen(app.history.session(7)))
        await settle(pilot)
        await pilot.press("end")
        await settle(pilot)
        assert_screen_inert(app, SHOWN_USER, SHOWN_RULE, SHOWN["osc52"], MARKUP, "does not exist [/]")
        await pilot.press("escape")
        app.push_screen(ReplayScreen(app.history.session(8)))
        await settle(pilot)
        await pilot.press("end")
        await settle(pilot)
        text = assert_screen_inert(app, "link", "red visible-after")
        assert "pwned-title" not in text
