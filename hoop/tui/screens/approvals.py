"""Area 2, Approvals: held commands, newest attention first, with the evidence to decide.

`a` approves, `g` approves and grants the user this rule for a while, `d` denies with a reason;
each asks first, naming the request (hoop.tui.screens.modals), and the selection stays on the
decided request, so pressing a key twice never decides a second one.
The gateway checks every decision (approver group, not your own request, still pending) and
its refusal is shown as it was given. The statement and every name are shown inert, so the
approver reads the exact text that would run (hoop.tui.inert).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import Static

from hoop.tui.app import ActionResult
from hoop.tui.data import Snapshot, fmt_span, fmt_time
from hoop.tui.inert import inert, inert_code
from hoop.tui.screens.base import AreaScreen, reset_table
from hoop.tui.screens.confirmations import request_details
from hoop.tui.screens.modals import AskText, Confirm, duration_problem
from hoop.tui.widgets.plain import Plain, PlainTable


def touched_tables(statement: str, protocol: str | None) -> list[str]:
    """The tables the statement touches, by the same classifier the gateway uses."""
    from hoop.core.sql import classify, classify_shell

    try:
        if protocol == "ssh":
            result = classify_shell(statement)
        else:
            result = classify(statement, "mysql" if protocol == "mysql" else "postgres")
    except Exception:  # evidence only: an unparsable statement shows no tables
        return []
    return sorted({t for s in result.walk() for t in s.tables})


def evidence(row: dict[str, Any], now: float) -> Group:
    info = Table.grid(padding=(0, 1))
    info.add_column(style="bold")
    info.add_column()
    # Every value is Text built by inert(): a Rich table reads plain strings as markup.
    info.add_row("Request", inert(f"#{row['id']}  {row['status']}"))
    info.add_row("Who", inert(f"{row['user']} (session {row['session_id']})"))
    info.add_row("Connection", inert(f"{row['connection']} ({row.get('protocol') or '?'})"))
    info.add_row("Rule", inert(row["rule"]))
    info.add_row("Why", inert(row["reason"] or "-"))
    tables = touched_tables(row["statement"], row.get("protocol"))
    info.add_row("Tables", inert(", ".join(tables) or "-"))
    waited = fmt_span(waited_for(row, now))
    if row["status"] == "pending":
        info.add_row("Waited", f"{waited}, {fmt_span(row['expires'] - now)} left")
    else:
        info.add_row("Waited", waited)
        info.add_row("Decided", inert(f"{fmt_time(row['decided'])} by {', '.join(row['decisions']) or '-'}"))
    needed = f"{len(row['decisions'])} of {row['required']}" if row["required"] > 1 else "1"
    info.add_row("Approvers", inert(f"{', '.join(row['approvers']) or 'any'} (needs {needed})"))
    lexer = "bash" if row.get("protocol") == "ssh" else "sql"
    return Group(info, Text(""), inert_code(row["statement"], lexer))


def waited_for(row: dict[str, Any], now: float) -> float:
    """How long a request waited: until now while pending, until its decision after that."""
    end = now if row["status"] == "pending" or row.get("decided") is None else row["decided"]
    return float(end - row["created"])


# The longest status, "cancelled" or "abandoned", fits whole (9).
QUEUE_COLUMNS = (("#", 3), ("User", 7), ("Waited", 6), ("Status", 9))


class ApprovalsScreen(AreaScreen):
    AREA = "approvals"
    BINDINGS = [
        Binding("a", "approve", "Approve"),
        Binding("g", "grant", "Approve+grant"),
        Binding("d", "deny", "Deny"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.message = ""
        self.now = 0.0

    def body(self) -> ComposeResult:
        with Horizontal(id="approvals-split"):
            yield PlainTable(id="queue", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="evidence-box"):
                yield Static("No request selected.", id="evidence")
        yield Plain("", id="approvals-status", classes="status")

    def on_mount(self) -> None:
        reset_table(self.query_one(PlainTable), QUEUE_COLUMNS)
        super().on_mount()

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.now = snapshot.taken
        table = self.query_one(PlainTable)
        selected = self.selected()
        reset_table(table, QUEUE_COLUMNS)
        self.rows = {}
        for row in snapshot.pending + snapshot.decided:
            key = str(row["id"])
            self.rows[key] = row
            style = "bold yellow" if row["status"] == "pending" else ("green" if row["status"] == "approved" else "red")
            table.add_row(
                key, row["user"], fmt_span(waited_for(row, snapshot.taken)), inert(row["status"], style=style), key=key
            )
        # Stay on the selected request, decided or not: moving on to the next one would let a
        # second press of the same key act on a request nobody looked at.
        keep = str(selected["id"]) if selected is not None else ""
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        elif self.rows:
            table.move_cursor(row=0)
        self._show_evidence()
        pending = len(snapshot.pending)
        self._status(self.message or (f"{pending} waiting" if pending else "nothing waiting for a decision"))

    def _status(self, text: str) -> None:
        self.query_one("#approvals-status", Plain).update(text)

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(PlainTable)
        if not self.rows or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self.rows.get(str(key))

    def on_data_table_row_highlighted(self, event: PlainTable.RowHighlighted) -> None:
        self._show_evidence()

    def _show_evidence(self) -> None:
        row = self.selected()
        panel = self.query_one("#evidence", Static)
        panel.update(evidence(row, self.now) if row else "No request selected.")

    def _pending(self) -> dict[str, Any] | None:
        row = self.selected()
        if row is None:
            self.notify("no request selected", severity="warning")
            return None
        if row["status"] != "pending":
            self.notify(f"#{row['id']} is already {row['status']}", severity="warning")
            return None
        return row

    def action_approve(self) -> None:
        row = self._pending()
        if row is None:
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.act(self, "approve", id=row["id"], reason="")

        self.app.push_screen(Confirm(f"Approve request #{row['id']}?", request_details(row), yes="Approve"), answer)

    def action_grant(self) -> None:
        row = self._pending()
        if row is None:
            return

        def answer(text: str | None) -> None:
            from hoop.core.identity import parse_ttl

            if text:
                self.app.act(self, "approve", id=row["id"], reason=f"grant {text}", grant_seconds=parse_ttl(text))

        self.app.push_screen(
            AskText(
                f"Approve #{row['id']} and grant",
                f"Let {row['user']} run statements of rule {row['rule']} without asking for how long? (e.g. 30m, 2h)",
                value="30m",
                validate=duration_problem,
                required=True,
                details=request_details(row),
            ),
            answer,
        )

    def action_deny(self) -> None:
        row = self._pending()
        if row is None:
            return

        def answer(reason: str | None) -> None:
            if reason:
                self.app.act(self, "deny", id=row["id"], reason=reason)

        self.app.push_screen(
            AskText(
                f"Deny request #{row['id']}",
                f"Why? {row['user']} will see this reason.",
                required=True,
                details=request_details(row),
            ),
            answer,
        )

    def on_action_result(self, message: ActionResult) -> None:
        ident = f"#{message.params.get('id')}"
        if message.ok:
            status = (message.result or {}).get("status", "done")
            self.message = f"{ident} {status}"
            self.notify(self.message)
        else:
            self.message = f"{ident}: {message.error}"
            self.notify(message.error, title=f"{message.op} refused", severity="error")
        self._status(self.message)
