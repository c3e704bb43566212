"""Area 4, Recordings: a searchable list of sessions (user, connection, date, statement text);
Enter opens the replay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import Input

from hoop.core.store.records import connection_label
from hoop.tui.data import fmt_span, fmt_time
from hoop.tui.screens.base import AreaScreen, reset_table
from hoop.tui.widgets.plain import Plain, PlainTable

if TYPE_CHECKING:
    from hoop.tui.app import Who

RECORDING_COLUMNS = (  # fits 80 columns
    ("ID", 4),
    ("User", 8),
    ("Connection", 10),
    ("Started", 16),
    ("Length", 6),
    ("Stmts", 5),
    ("Proto", 8),
)


class RecordingsScreen(AreaScreen):
    AREA = "recordings"
    BINDINGS = [Binding("slash", "focus_search", "Search"), Binding("enter", "open", "Replay", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}

    def body(self) -> ComposeResult:
        yield Input(placeholder="search: user, connection, date (2025-01-31) or statement text", id="search")
        yield PlainTable(id="recordings", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="recordings-status", classes="status")

    def on_mount(self) -> None:
        reset_table(self.query_one(PlainTable), RECORDING_COLUMNS)
        super().on_mount()
        self.query_one(PlainTable).focus()
        # The list is filled once the caller's identity (and so their scope) is known: watch_who.

    def watch_who(self, who: Who | None) -> None:
        super().watch_who(who)
        if who is None or not self.query("#search"):  # not composed yet: on_mount comes back here
            return
        if who.online or who.reads_store:  # the list follows the caller's scope, now known
            self.search(self.query_one(Input).value)
        else:  # still asking the gateway who this is, or it refused the identity: nothing to show
            self._show(self.query_one(Input).value, [])

    def action_focus_search(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(PlainTable).focus()

    @work(thread=True, exclusive=True, group="search")
    def search(self, text: str) -> None:
        rows = self.app.scoped_sessions(self.app.history.search_sessions(text))
        self.app.call_from_thread(self._show, text, rows)

    def _show(self, text: str, rows: list[dict[str, Any]]) -> None:
        table = self.query_one(PlainTable)
        reset_table(table, RECORDING_COLUMNS)
        self.rows = {}
        for row in rows:
            key = str(row["id"])
            self.rows[key] = row
            length = fmt_span(row["ended"] - row["started"]) if row["ended"] else "live"
            table.add_row(
                key,
                row["user"],
                connection_label(row["connection"]),
                fmt_time(row["started"])[:16],
                length,
                str(row["statements"]),
                row["protocol"],
                key=key,
            )
        what = f" matching {text!r}" if text.strip() else ""
        self.query_one("#recordings-status", Plain).update(f"{len(rows)} sessions{what}   enter: replay   /: search")

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(PlainTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self.rows.get(str(key))

    def on_data_table_row_selected(self, event: PlainTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        from hoop.tui.screens.replay import ReplayScreen

        row = self.selected()
        if row is not None:
            self.app.push_screen(ReplayScreen(row))
