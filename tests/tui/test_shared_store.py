"""The TUI opened on a PostgreSQL store that another gateway fills: its recordings (a
database session's and an SSH terminal's) are rows of the store, and the recordings list,
replay and search work from a recordings_dir that never held them. The store is the
deterministic TUI store moved into PostgreSQL with `hoop migrate`'s copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.pgstore import store_database
from test_pilot import status_text
from textual.widgets import DataTable
from tui_fixtures import NOW, FakeControl, build_store, settle, write_cast

from hoop.core.store.base import open_store
from hoop.core.store.migrate import Side, copy
from hoop.tui.app import HoopApp
from hoop.tui.data import GatewayLink, History
from hoop.tui.screens.replay import ReplayScreen


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[History]:
    local = build_store(tmp_path / "gateway-a")
    chunks = [f"line {i} of boring output\r\n" for i in range(3000)]
    chunks[2900] = "root@web1:~# echo needle-4711\r\n"
    write_cast(local.recordings_dir / "3.cast", chunks, step=0.1)
    with store_database() as dsn:
        store = open_store(dsn)
        try:
            assert copy(Side(local.store, local.recordings_dir), Side(store)).ok
            yield History(store, tmp_path / "gateway-b" / "recordings")
        finally:
            store.close()
            local.store.close()


def _app(history: History) -> HoopApp:
    return HoopApp(history, GatewayLink(FakeControl()), now=lambda: NOW, poll=0, start="recordings")


async def test_a_database_recording_replays_from_the_store(shared: History) -> None:
    assert not (shared.recordings_dir / "1.hoop.jsonl").exists()
    app = _app(shared)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"EMAIL")  # the recordings list, searched by statement text, any case
        await settle(pilot)
        table = app.screen.query_one("#recordings", DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["1"]
        await pilot.press("enter", "enter")
        await settle(pilot)
        screen: Any = app.screen
        await pilot.press("right_square_bracket")
        assert screen.index == 1 and "select id, email" in screen.screen_text()
        await pilot.press("right_square_bracket", "right")
        assert "blocked by rule" in screen.screen_text()


async def test_a_terminal_recording_seeks_and_searches_from_the_store(shared: History) -> None:
    app = _app(shared)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(ReplayScreen(app.history.session(3)))
        await settle(pilot)
        screen: Any = app.screen
        screen.search("needle-4711")
        assert screen.index == 2900 and "needle-4711" in screen.screen_text()
        await pilot.press("space", "plus", "plus")
        assert screen.playing and "4x" in status_text(app, "#replay-bar")
