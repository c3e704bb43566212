"""Area 1, Sessions: live and recent sessions, updating as they change. Enter watches one
(database: its statement log; SSH: its terminal screen), `k` kills a live one after asking for
a reason (the gateway disconnects the client and audits the kill). Names, statements, errors
and terminal screens are shown inert (hoop.tui.inert)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.timer import Timer
from textual.widgets import Footer, Label, RichLog

from hoop.core.store.records import connection_label
from hoop.tui.app import ActionResult
from hoop.tui.data import Snapshot, fmt_span, fmt_time
from hoop.tui.inert import inert
from hoop.tui.screens.base import AreaScreen, HoopScreen, reset_table
from hoop.tui.screens.confirmations import session_details
from hoop.tui.screens.modals import AskText
from hoop.tui.widgets.plain import Plain, PlainTable

# What matters first, so that it fits 80 columns; the line under the table shows the selected
# session whole (protocol, client address, exact start). The longest status is 14 characters.
COLUMNS = (
    ("ID", 4),
    ("User", 8),
    ("Connection", 10),
    ("Status", 14),
    ("Length", 6),
    ("Stmt", 4),
    ("Blk", 3),
    ("Held", 4),
    ("Started", 11),
    ("Proto", 8),
)


def session_cells(row: dict[str, Any], now: float) -> tuple[Any, ...]:
    live = row["ended"] is None
    status = inert(row["status"], style="bold green" if live else "dim")
    duration = fmt_span((row["ended"] or now) - row["started"])
    return (
        str(row["id"]),
        row["user"],
        connection_label(row["connection"]),
        status,
        duration,
        str(row["statements"]),
        str(row["blocked"]),
        str(row["held"]),
        fmt_time(row["started"])[5:16],
        row["protocol"],
    )


def session_line(row: dict[str, Any]) -> str:
    """The selected session in one line, with what the columns leave out."""
    client = f" from {row['client_addr']}" if row.get("client_addr") else ""
    return (
        f"#{row['id']} {row['status']}: {row['statements']} statements, {row['blocked']} blocked, "
        f"{row['held']} held; {row['protocol']}{client}, started {fmt_time(row['started'])}"
    )


class SessionsScreen(AreaScreen):
    AREA = "sessions"
    BINDINGS = [
        Binding("enter", "watch", "Watch"),
        Binding("k", "kill", "Kill"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.last_error = ""

    def body(self) -> ComposeResult:
        yield Label("Live and recent sessions", classes="section")
        yield PlainTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="session-line", classes="detail")
        yield Plain("", id="sessions-status", classes="status")

    def on_mount(self) -> None:
        table = self.query_one(PlainTable)
        reset_table(table, COLUMNS)
        super().on_mount()

    def show_snapshot(self, snapshot: Snapshot) -> None:
        table = self.query_one(PlainTable)
        now = snapshot.taken
        rows = snapshot.live + snapshot.recent
        keep = table.cursor_row
        selected = self.selected()
        reset_table(table, COLUMNS)
        self.rows = {}
        for row in rows:
            key = str(row["id"])
            self.rows[key] = row
            table.add_row(*session_cells(row, now), key=key)
        if selected is not None and str(selected["id"]) in self.rows:
            table.move_cursor(row=table.get_row_index(str(selected["id"])))
        elif rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        self._show_line()
        live = len(snapshot.live)
        self.query_one("#sessions-status", Plain).update(
            self.last_error or f"{live} live, {len(snapshot.recent)} recent   enter: watch   k: kill"
        )

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(PlainTable)
        if not self.rows or table.cursor_row < 0 or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self.rows.get(str(key))

    def on_data_table_row_selected(self, event: PlainTable.RowSelected) -> None:
        self.action_watch()

    def on_data_table_row_highlighted(self, event: PlainTable.RowHighlighted) -> None:
        self._show_line()

    def _show_line(self) -> None:
        row = self.selected()
        self.query_one("#session-line", Plain).update(session_line(row) if row else "")

    def action_watch(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(WatchScreen(row))

    def action_kill(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row["ended"] is not None:
            self.notify(f"session {row['id']} has already ended", severity="warning")
            return

        def answer(reason: str | None) -> None:
            if reason:
                self.app.act(self, "kill", id=row["id"], reason=reason)

        self.app.push_screen(
            AskText(
                f"Kill session {row['id']}?",
                f"{row['user']} on {connection_label(row['connection'])} will be disconnected. Reason:",
                required=True,
                details=session_details(row),
            ),
            answer,
        )

    def on_action_result(self, message: ActionResult) -> None:
        if message.ok:
            self.last_error = ""
            self.notify(f"session {message.params['id']} killed")
        else:
            self.last_error = f"kill refused: {message.error}"
            self.query_one("#sessions-status", Plain).update(self.last_error)
            self.notify(message.error, title="Kill refused", severity="error")


class WatchScreen(HoopScreen):
    """Follow one session live: its statements (database) or its terminal screen (SSH).

    Watching a moderated session (an SSH connection with `shell = "moderated"`) as one of its
    moderators is what lets it run: the screen renews its moderator's lease every second while
    it is open, and gives it up when left (hoop/server/moderation.py)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("k", "kill", "Kill")]

    def __init__(self, session: dict[str, Any]) -> None:
        super().__init__()
        self.session = session
        self.seq = 0
        self.terminal = session["protocol"] == "ssh"
        self.moderation = ""  # what this watcher's moderation of the session is, for the status line
        self.moderating: Timer | None = None

    def compose(self) -> ComposeResult:
        s = self.session
        yield Label(
            inert(
                f"Session {s['id']}: {s['user']} on {connection_label(s['connection'])} ({s['protocol']}), "
                f"started {fmt_time(s['started'])}"
            ),
            classes="section",
        )
        if self.terminal:
            yield Plain("", id="terminal", classes="terminal")
        else:
            yield RichLog(id="log", wrap=True, markup=False, highlight=False)
        yield Plain("", id="watch-status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()
        self.set_interval(0.5, self.refresh_view)
        if self.terminal and self.session["ended"] is None:
            self.moderate()
            self.moderating = self.set_interval(1.0, self.moderate)

    def on_unmount(self) -> None:
        if self.moderating is not None:
            self.moderating.stop()
            self.app.act(self.app, "moderate", id=self.session["id"], leave=True)

    @work(thread=True, exclusive=True, group="moderate")
    def moderate(self) -> None:
        """Renew this watcher's moderator lease, if the session is moderated."""
        from hoop.core.errors import HoopError

        try:
            result, error = self.app.link.call("moderate", id=self.session["id"]), ""
        except HoopError as exc:
            result, error = None, str(exc)
        self.app.call_from_thread(self._moderation, result, error)

    def _moderation(self, result: dict[str, Any] | None, error: str) -> None:
        if result is None or not result.get("moderated") or result.get("state") == "ended":
            if self.moderating is not None:  # not moderated, or not by this watcher: stop asking
                self.moderating.stop()
                self.moderating = None
            self.moderation = f"not moderating: {error}" if error and result is None else ""
        else:
            others = [m for m in result["moderators"] if m != self.app.who.user]
            self.moderation = f"moderating ({result['state']}" + (f", with {', '.join(others)})" if others else ")")
        self._status(self.session)

    @work(thread=True, exclusive=True, group="watch")
    def refresh_view(self) -> None:
        history = self.app.history
        session = history.session(self.session["id"]) or self.session
        if self.terminal:
            from hoop.tui.timeline import CastTimeline

            path = history.copies.path(f"{session['id']}.cast")  # new chunks only, on a shared store
            history.copies.path(f"{session['id']}.keyframes.jsonl")
            lines = CastTimeline(path).view(10**9, 0) if path is not None else ["(no terminal output yet)"]
            self.app.call_from_thread(self._show_terminal, session, lines)
        else:
            rows = history.statements_after(session["id"], self.seq)
            self.app.call_from_thread(self._show_statements, session, rows)

    def _show_terminal(self, session: dict[str, Any], lines: list[str]) -> None:
        self.query_one("#terminal", Plain).update(Text("\n").join(inert(line) for line in lines))
        self._status(session)

    def _show_statements(self, session: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        log = self.query_one(RichLog)
        for r in rows:
            self.seq = max(self.seq, r["seq"])
            style = {"block": "bold red", "review": "yellow"}.get(r["decision"], "green")
            line = Text(f"{fmt_time(r['started'])[11:]} ")
            line.append_text(inert(f"[{r['decision']}{' ' + r['rule'] if r['rule'] else ''}] ", style=style))
            line.append_text(inert(r["text"]))
            if r["error"]:
                line.append_text(inert(f"  -> error: {r['error']}", style="red"))
            elif r["rows"] is not None:
                line.append(f"  -> {r['rows']} rows", style="dim")
            log.write(line)
        self._status(session)

    def _status(self, session: dict[str, Any]) -> None:
        state = "live" if session["ended"] is None else f"ended ({session['status']})"
        moderation = f"   {self.moderation}" if self.moderation else ""
        self.query_one("#watch-status", Plain).update(
            f"{state}{moderation}   {session['statements']} statements, {session['blocked']} blocked, "
            f"{session['held']} held   escape: back   k: kill"
        )

    def action_kill(self) -> None:
        def answer(reason: str | None) -> None:
            if reason:
                self.app.act(self, "kill", id=self.session["id"], reason=reason)

        s = self.session
        self.app.push_screen(
            AskText(
                f"Kill session {s['id']}?",
                f"{s['user']} on {connection_label(s['connection'])} will be disconnected. Reason:",
                required=True,
                details=session_details(s),
            ),
            answer,
        )

    def on_action_result(self, message: ActionResult) -> None:
        if message.ok:
            self.notify(f"session {message.params['id']} killed")
        else:
            self.notify(message.error, title="Kill refused", severity="error")
