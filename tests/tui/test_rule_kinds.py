"""The TUI rule editor refuses an unknown statement kind as you type, and a refusal by the
gateway's control endpoint (a rule stored before kinds were checked, switched on or off from
the list) comes back and is shown; an admin switches a built-in rule off only with a reason, and on
again."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_pilot import status_text
from textual.widgets import DataTable
from tui_fixtures import FakeControl, gateway_app, new_rule_editor, settle

from hoop.core.rulebook import RuleBook
from hoop.core.store.sqlite import SqliteStore
from hoop.tui.screens.modals import AskText


async def test_editor_shows_the_unknown_kind_and_saves_nothing(make_app: Any, control: FakeControl) -> None:
    app = make_app(start="rules")
    async with app.run_test(size=(120, 40)) as pilot:
        (await new_rule_editor(pilot)).text = 'name = "no-trunc"\naction = "block"\nstatements = ["trunc"]\n'
        await settle(pilot)
        problem = status_text(app, "#rule-problem")
        assert "unknown statement kind 'trunc'" in problem and "truncate" in problem
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert control.calls == []


@pytest.mark.needs_postgres
async def test_gateway_refusal_is_shown_in_the_rules_list(make_gateway: Any) -> None:
    gw = make_gateway(
        '[[rules]]\nname = "hold-updates"\naction = "review"\nstatements = ["update"]\napprovers = ["dba"]\n'
    )
    data = gw.root / "data"
    store = SqliteStore(data / "hoop.db")
    # A rule saved before statement kinds were checked: still in the book, its known entry in force.
    RuleBook(store)._write(
        "guard", "legacy", {"name": "legacy", "action": "block", "statements": ["trunc"]}, "cli:old", deleted=False
    )
    store.close()
    app = gateway_app(gw, gw.token("ada"), poll=0, start="rules")  # an admin: rule changes are theirs
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#rules", DataTable)
        names = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        table.move_cursor(row=names.index("legacy"))
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("enter")  # confirmed, no reason given
        deadline = time.monotonic() + 15
        while "refused" not in status_text(app, "#rules-status") and time.monotonic() < deadline:
            await settle(pilot, 1)
            await pilot.pause(0.1)
        status = status_text(app, "#rules-status")
        assert "rules.disable refused" in status and "unknown statement kind 'trunc'" in status
    rows = json.loads(gw.cli("rules", "list", "--json").stdout)
    assert [r["version"] for r in rows if r["name"] == "legacy"] == [1]  # nothing saved


def pick(table: DataTable[Any], name: str) -> None:
    names = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
    table.move_cursor(row=names.index(name))


async def _wait_status(app: Any, pilot: Any, text: str) -> str:
    deadline = time.monotonic() + 15
    while text not in status_text(app, "#rules-status") and time.monotonic() < deadline:
        await settle(pilot, 1)
        await pilot.pause(0.1)
    return status_text(app, "#rules-status")


@pytest.mark.needs_postgres
async def test_an_admin_switches_a_builtin_rule_off_with_a_reason_and_on_again(make_gateway: Any) -> None:
    gw = make_gateway("")
    app = gateway_app(gw, gw.token("ada"), poll=0, start="rules")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#rules", DataTable)
        pick(table, "builtin-server-files")
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("enter")  # no reason: the dialog refuses to submit
        await settle(pilot)
        assert isinstance(app.screen, AskText) and status_text(app, "#problem")
        await pilot.press(*"restore", "space", *"drill")
        await settle(pilot)
        await pilot.press("enter")
        assert "rules.disable:" in await _wait_status(app, pilot, "rules.disable")
        deadline = time.monotonic() + 15
        while app.screen.selected()["body"].get("enabled", True) and time.monotonic() < deadline:
            await settle(pilot, 1)  # the list reloads after the change
            pick(table, "builtin-server-files")
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("y")
        assert "rules.enable:" in await _wait_status(app, pilot, "rules.enable")
    events = json.loads(gw.cli("audit", "--json", "--action", "rule.disable").stdout)
    assert [(e["actor"], e["detail"]["reason"]) for e in events] == [("ada", "restore drill")]
    rows = json.loads(gw.cli("rules", "list", "--json").stdout)
    assert [r["body"].get("enabled", True) for r in rows if r["name"] == "builtin-server-files"] == [True]
