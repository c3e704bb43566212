"""At 80x24 every area shows what matters whole: full status words, the columns that matter
within the width, the rest in the line under the table; a decided request's wait stops."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable
from tui_fixtures import NOW, FakeControl, settle

from hoop.tui.app import HoopApp
from hoop.tui.data import GatewayLink

SIZE = (80, 24)
# Per area: its table and the columns a person needs without scrolling.
MATTERS = {
    "sessions": ("#sessions", ["ID", "User", "Connection", "Status", "Length", "Stmt", "Blk", "Held"]),
    "rules": ("#rules", ["Kind", "On", "Name", "What", "Ver"]),
    "recordings": ("#recordings", ["ID", "User", "Connection", "Started", "Length", "Stmts"]),
    "approvals": ("#queue", ["#", "User", "Waited", "Status"]),
}


def _cancelled(history: Any) -> None:
    with history.store.lock:
        history.store.conn.execute(
            "INSERT INTO approvals(id, session_id, user, connection, statement, rule, reason, approvers, "
            "required, status, created, expires, decided, decisions) VALUES (9, 6, 'bob', 'pg', "
            "'delete from orders where id = 1', 'hold-writes', 'r', '[\"dba\"]', 1, 'cancelled', ?, ?, ?, '[]')",
            (NOW - 200, NOW + 100, NOW - 150),
        )


def _visible_columns(table: DataTable[Any]) -> list[str]:
    """The labels of the columns wholly inside the table's visible width."""
    shown, edge = [], 0
    for column in table.ordered_columns:
        edge += column.get_render_width(table)
        if edge <= table.scrollable_content_region.width:
            shown.append(str(column.label))
    return shown


@pytest.mark.parametrize("area", list(MATTERS))
async def test_columns_that_matter_fit_80_columns(make_app: Any, history: Any, area: str) -> None:
    _cancelled(history)
    app = make_app(start=area)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        selector, needed = MATTERS[area]
        table = app.screen.query_one(selector, DataTable)
        assert set(needed) <= set(_visible_columns(table)), _visible_columns(table)
        # Every cell of those columns fits its column: nothing is cut ("cancell").
        for key, column in table.columns.items():
            if str(column.label) in needed:
                for row in range(table.row_count):
                    cell = str(table.get_cell_at((row, table.get_column_index(key))))
                    assert len(cell) <= column.width, f"{area}: {cell!r} cut to {column.width}"


async def test_the_line_under_the_table_shows_the_rest(make_app: Any) -> None:
    app = make_app(start="sessions")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        line = str(app.screen.query_one("#session-line").render())
        assert line.startswith("#6 open: 1 statements") and "postgres from 127.0.0.1" in line
    app = make_app(start="rules")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        line = str(app.screen.query_one("#rule-line").render())
        assert line == "guard hold-writes v1 by hoop.toml: review update, delete"


async def test_waited_stops_at_the_decision(history: Any, control: FakeControl) -> None:
    _cancelled(history)
    clock = [NOW]
    app = HoopApp(history, GatewayLink(control), now=lambda: clock[0], poll=0, start="approvals")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#queue", DataTable)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        assert str(rows["9"][3]) == "cancelled" and str(rows["9"][2]) == "50s"
        assert str(rows["3"][2]) == "30s"
        clock[0] = NOW + 120
        app.poll()
        await settle(pilot)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        assert str(rows["9"][2]) == "50s"  # decided: the wait is over
        assert str(rows["3"][2]) == "2m30s"  # pending: still counting
