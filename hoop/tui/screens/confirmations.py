"""What a confirmation shows about the thing it acts on: a held request, a session or a rule,
and a rule change as a diff. Every value that came from a user, a server or the store is
built with hoop.tui.inert, so a name or a statement cannot restyle or drive the dialog."""

from __future__ import annotations

import difflib
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from hoop.core.store.records import connection_label
from hoop.tui.data import fmt_time
from hoop.tui.inert import inert, inert_code
from hoop.tui.preview import to_toml

PREVIEW_LINES = 12  # of a statement; the whole text is in the Approvals area's evidence panel
PREVIEW_CHARS = 1500


def _facts(*rows: tuple[str, str]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in rows:
        grid.add_row(label, inert(value))
    return grid


def statement_preview(statement: str, protocol: str | None) -> Text:
    """The start of a statement, highlighted and inert, saying how much is left out."""
    lines = statement.split("\n")
    shown = "\n".join(lines[:PREVIEW_LINES])[:PREVIEW_CHARS]
    text = inert_code(shown, "bash" if protocol == "ssh" else "sql")
    if len(shown) < len(statement):
        text.append(f"\n... {len(statement) - len(shown)} more characters", style="dim")
    return text


def request_details(row: dict[str, Any]) -> Group:
    """A held request: its id, who asked, where, under which rule, and what would run."""
    facts = _facts(
        ("Request", f"#{row['id']}"),
        ("Who", f"{row['user']} (session {row['session_id']})"),
        ("Connection", f"{row['connection']} ({row.get('protocol') or '?'})"),
        ("Rule", str(row["rule"])),
    )
    return Group(facts, Text(""), statement_preview(row["statement"], row.get("protocol")))


def session_details(row: dict[str, Any]) -> Table:
    return _facts(
        ("Session", str(row["id"])),
        ("Who", str(row["user"])),
        ("Connection", f"{connection_label(row['connection'])} ({row['protocol']})"),
        ("Started", fmt_time(row["started"])),
    )


def rule_details(kind: str, name: str, body: dict[str, Any], version: object = None) -> Group:
    what = "guardrail" if kind == "guard" else "masking rule"
    facts = _facts(("Rule", f"{what} {name}" + (f" (version {version})" if version is not None else "")))
    return Group(facts, Text(""), inert(to_toml(body).rstrip("\n"), multiline=True, style="dim"))


def rule_diff(name: str, old: dict[str, Any] | None, new: dict[str, Any]) -> Text:
    """The change to a rule as a unified diff of its TOML body (empty before a new rule)."""
    before = to_toml(old).splitlines() if old is not None else []
    lines = difflib.unified_diff(
        before, to_toml(new).splitlines(), f"{name} (saved)" if old else "(new rule)", f"{name} (to save)", lineterm=""
    )
    text = Text(end="")
    for line in lines:
        style = "bold" if line[:3] in ("---", "+++") else {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
        text.append_text(inert(line, style=style))
        text.append("\n")
    if not text.plain:
        text.append("(no change)", style="dim")
    text.rstrip()
    return text
