"""One action, one audit name, whichever client made it: a rule switched off and on from the
CLI and from the TUI, each through the running gateway."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_rule_kinds import pick
from textual.widgets import DataTable
from tui_fixtures import gateway_app, settle

pytestmark = pytest.mark.needs_postgres

RULE = '[[rules]]\nname = "one-name"\naction = "block"\nstatements = ["truncate"]\n'


def _switches(gw: Any) -> list[tuple[str, str]]:
    events = json.loads(gw.cli("audit", "--json", "--user", "ada").stdout)
    return [(e["action"], e["target"]) for e in events if e["action"].startswith("rule")]


async def test_cli_and_tui_write_the_same_audit_names(make_gateway: Any) -> None:
    gw = make_gateway(RULE)
    gw.admin("rules", "disable", "one-name", "--reason", "from the cli")
    gw.admin("rules", "enable", "one-name")
    app = gateway_app(gw, gw.tokens["ada"], poll=0, start="rules")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        pick(app.screen.query_one("#rules", DataTable), "one-name")
        await pilot.press("space")
        await settle(pilot)
        await pilot.press(*"from the tui", "enter")
        deadline = time.monotonic() + 15
        while len(_switches(gw)) < 3 and time.monotonic() < deadline:
            await pilot.pause(0.2)
        app.screen.load()
        await settle(pilot, 1)
        pick(app.screen.query_one("#rules", DataTable), "one-name")
        await pilot.press("space")
        await settle(pilot)
        await pilot.press("y")
        while len(_switches(gw)) < 4 and time.monotonic() < deadline:
            await pilot.pause(0.2)
    cli, tui = _switches(gw)[:2], _switches(gw)[2:]
    assert cli == [("rule.disable", "guard:one-name"), ("rule.enable", "guard:one-name")]
    assert tui == cli
