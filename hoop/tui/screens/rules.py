"""Area 3, Rules: guardrail and masking rules, latest versions.

`n` new guardrail, `m` new masking rule, Enter/`e` edit, Space enable/disable, `x` remove.
The editor validates the TOML draft as you type and previews it live: a guardrail against the
recent statements in the store, a masking rule on a sample value and on the last result rows
of a recorded session. Ctrl+S shows the change as a diff and, once confirmed, sends it to the
gateway, which versions, audits and applies it. Switching a rule on or off and removing it ask
first too, naming the rule.
Rule names, authors, statements and sample values are shown inert (hoop.tui.inert).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import Footer, Input, Label, TextArea

from hoop.tui.app import ActionResult
from hoop.tui.inert import inert
from hoop.tui.preview import GUARD_TEMPLATE, MASK_TEMPLATE, guard_preview, mask_preview, parse_draft, to_toml
from hoop.tui.screens.base import AreaScreen, HoopScreen, reset_table
from hoop.tui.screens.confirmations import rule_details, rule_diff
from hoop.tui.screens.modals import AskText, Confirm
from hoop.tui.widgets.plain import Plain, PlainTable


def summary(row: dict[str, Any]) -> str:
    b = row["body"]
    if row["kind"] == "guard":
        what = b.get("statements") or b.get("commands") or b.get("tables") or b.get("flags") or []
        return f"{b.get('action')} {', '.join(what)}"[:60]
    return f"{b.get('style', 'redact')} {', '.join(list(b.get('columns', [])) + list(b.get('detectors', [])))}"[:60]


ADMIN_ACTIONS = frozenset({"new", "toggle_rule", "remove", "save"})
# What matters first, so that it fits 80 columns; the line under the table shows the selected
# rule's version, author and what it does whole.
RULE_COLUMNS = (("Kind", 5), ("On", 3), ("Name", 24), ("What", 31), ("Ver", 4), ("Author", 12))


def rule_line(row: dict[str, Any]) -> str:
    b = row["body"]
    if row["kind"] == "guard":
        what = b.get("statements") or b.get("commands") or b.get("tables") or b.get("flags") or []
        does = f"{b.get('action')} {', '.join(what)}"
    else:
        does = f"{b.get('style', 'redact')} {', '.join(list(b.get('columns', [])) + list(b.get('detectors', [])))}"
    return f"{row['kind']} {row['name']} v{row['version']} by {row['author']}: {does}"


class RulesScreen(AreaScreen):
    AREA = "rules"
    BINDINGS = [
        Binding("n", "new('guard')", "New guardrail"),
        Binding("m", "new('mask')", "New mask"),
        Binding("e", "edit", "Edit"),
        Binding("space", "toggle_rule", "On/off"),
        Binding("x", "remove", "Remove"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.message = ""  # the last action's outcome: a reload after a dialog closes keeps it

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Changing rules is for admins (the gateway refuses anyone else): others read and preview.
        return self.app.who.roles.admin or action not in ADMIN_ACTIONS

    def body(self) -> ComposeResult:
        yield Label("Guardrail and masking rules (latest versions)", classes="section")
        yield PlainTable(id="rules", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="rule-line", classes="detail")
        yield Plain("", id="rules-status", classes="status")

    def on_mount(self) -> None:
        reset_table(self.query_one(PlainTable), RULE_COLUMNS)
        super().on_mount()
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="rules")
    def load(self) -> None:
        rows = self.app.history.rules()
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one(PlainTable)
        keep = table.cursor_row
        reset_table(table, RULE_COLUMNS)
        self.rows = {}
        for row in rows:
            key = f"{row['kind']}:{row['name']}"
            self.rows[key] = row
            on = Text("on", style="green") if row["body"].get("enabled", True) else Text("off", style="red")
            table.add_row(row["kind"], on, row["name"], summary(row), str(row["version"]), row["author"], key=key)
        if rows:
            table.move_cursor(row=min(max(keep, 0), len(rows) - 1))
        self._show_line()
        default = f"{len(rows)} rules   enter: edit   space: on/off"
        self.query_one("#rules-status", Plain).update(self.message or default)

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one(PlainTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self.rows.get(str(key))

    def on_data_table_row_selected(self, event: PlainTable.RowSelected) -> None:
        self.action_edit()

    def on_data_table_row_highlighted(self, event: PlainTable.RowHighlighted) -> None:
        self._show_line()

    def _show_line(self) -> None:
        row = self.selected()
        self.query_one("#rule-line", Plain).update(rule_line(row) if row else "")

    def action_new(self, kind: str) -> None:
        body = GUARD_TEMPLATE if kind == "guard" else MASK_TEMPLATE
        self.app.push_screen(RuleEditor(kind, to_toml(body), new=True))

    def action_edit(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(RuleEditor(row["kind"], to_toml(row["body"]), saved=row["body"]))

    def action_toggle_rule(self) -> None:
        """Switching on asks yes/no; switching off asks why (the gateway stores and audits the
        reason, and refuses to switch a built-in rule off without one)."""
        row = self.selected()
        if row is None:
            return
        body = dict(row["body"])
        body["enabled"] = not body.get("enabled", True)
        what = "guardrail" if row["kind"] == "guard" else "masking rule"
        details = Group(
            rule_details(row["kind"], row["name"], row["body"], row["version"]),
            Text(""),
            rule_diff(row["name"], row["body"], body),
        )
        target = {"kind": row["kind"], "name": row["name"]}
        if body["enabled"]:

            def enable(yes: bool | None) -> None:
                if yes:
                    self.app.act(self, "rules.enable", **target)

            self.app.push_screen(Confirm(f"Enable {what} {row['name']}?", details, yes="Enable"), enable)
            return

        def disable(reason: str | None) -> None:
            if reason is not None:
                self.app.act(self, "rules.disable", **target, reason=reason.strip())

        builtin = row["name"].startswith("builtin-")
        self.app.push_screen(
            AskText(
                f"Disable {what} {row['name']}?",
                "Why (a built-in rule needs a reason):" if builtin else "Why (optional):",
                required=builtin,
                details=details,
            ),
            disable,
        )

    def action_remove(self) -> None:
        row = self.selected()
        if row is None:
            return

        def answer(text: str | None) -> None:
            if text:
                self.app.act(self, "rules.remove", kind=row["kind"], name=row["name"])

        self.app.push_screen(
            AskText(
                f"Remove {row['kind']} rule {row['name']}?",
                "Type the rule's name to confirm:",
                validate=lambda t: "" if t.strip() == row["name"] else "type the exact name",
                required=True,
                details=rule_details(row["kind"], row["name"], row["body"], row["version"]),
            ),
            answer,
        )

    def on_action_result(self, message: ActionResult) -> None:
        status = self.query_one("#rules-status", Plain)
        if message.ok:
            self.message = f"{message.op}: {message.result}"
            self.load()
        else:
            self.message = f"{message.op} refused: {message.error}"
            self.notify(message.error, title="Rule not saved", severity="error")
        status.update(self.message)


class RuleEditor(HoopScreen):
    BINDINGS = [Binding("ctrl+s", "save", "Save"), Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, kind: str, text: str, new: bool = False, saved: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.kind, self.text, self.new = kind, text, new
        self.saved = saved  # the body as stored, for the diff shown before saving (None: a new rule)
        self.draft = parse_draft(kind, text)
        self.sample_session: int | None = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.app.who.roles.admin or action not in ADMIN_ACTIONS

    def compose(self) -> ComposeResult:
        what = "guardrail" if self.kind == "guard" else "masking rule"
        yield Label(f"{'New' if self.new else 'Edit'} {what}   ctrl+s: save   escape: back", classes="section")
        with Horizontal(id="rules-split"):
            with Vertical(id="rule-editor"):
                yield TextArea(self.text, language="toml", id="draft", theme="monokai")
                yield Plain("", id="rule-problem")
            with VerticalScroll(id="rule-preview-box"):
                if self.kind == "mask":
                    yield Input(
                        value="alice@example.com 4111 1111 1111 1111", id="sample-input", placeholder="sample value"
                    )
                yield Plain("", id="rule-preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()
        self.revalidate()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.text = event.text_area.text
        self.revalidate()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.revalidate()

    def revalidate(self) -> None:
        self.draft = parse_draft(self.kind, self.text)
        problem = self.query_one("#rule-problem", Plain)
        problem.set_class(not self.draft.problem, "ok")
        problem.update(self.draft.problem or "valid")
        if self.draft.rule is not None:
            sample = self.query_one("#sample-input", Input).value if self.kind == "mask" else ""
            self.preview(self.draft.rule, sample)
        else:
            self.query_one("#rule-preview", Plain).update(Text("(fix the draft to see a preview)", style="dim"))

    @work(thread=True, exclusive=True, group="preview")
    def preview(self, rule: Any, sample: str) -> None:
        history = self.app.history
        if self.kind == "guard":
            statements = history.recent_statements(200)
            groups: dict[str, tuple[str, ...]] = {}

            def groups_of(user: str) -> tuple[str, ...]:
                if user not in groups:
                    groups[user] = history.store.user_groups(user) or ()
                return groups[user]

            result = guard_preview(rule, statements, groups_of)
            text = Text(
                f"Of the last {result.checked} statements this rule would stop {len(result.hits)}:\n", style="bold"
            )
            for action, row, _reason in result.hits[:40]:
                style = {"block": "red", "review": "yellow"}.get(action, "magenta")
                text.append(f"{action.upper():<6} ", style=style)
                line = inert(f"{row['user']}@{row['connection']}: {row['text']}")
                line.truncate(90, overflow="ellipsis")
                text.append_text(line)
                text.append("\n")
        else:
            recorded = history.sample_rows(self.sample_session)
            sid, columns = recorded.session, recorded.columns
            connection = (history.session(sid) or {}).get("connection", "*") if sid else "*"
            masked, out = mask_preview(rule, connection, sample, recorded)
            text = Text("Sample value:\n", style="bold")
            text.append_text(inert(f"  {masked}"))
            text.append("\n\n")
            if out:
                text.append(f"Last result rows of session {sid}:\n", style="bold")
                if columns:
                    text.append_text(inert("  " + " | ".join(columns), style="dim"))
                    text.append("\n")
                for r in out:
                    text.append_text(inert("  " + " | ".join(r)))
                    text.append("\n")
            else:
                text.append("(no recorded result rows to preview on)\n", style="dim")
        self.app.call_from_thread(self.query_one("#rule-preview", Plain).update, text)

    def action_save(self) -> None:
        if self.draft.problem or self.draft.body is None:
            self.notify(self.draft.problem or "nothing to save", title="Not saved", severity="error")
            return
        body = self.draft.body
        name = str(body.get("name", ""))
        # A renamed rule is saved as a new rule beside the old one: diff it against nothing.
        saved = self.saved if self.saved is not None and self.saved.get("name") == name else None

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.act(self, "rules.save", kind=self.kind, body=body)

        what = "guardrail" if self.kind == "guard" else "masking rule"
        title = f"Save {what} {name}?" if saved is not None else f"Save new {what} {name}?"
        self.app.push_screen(Confirm(title, rule_diff(name, saved, body), yes="Save"), answer)

    def on_action_result(self, message: ActionResult) -> None:
        if message.ok:
            self.notify(f"saved {message.params['body'].get('name')} ({message.result})")
            self.app.pop_screen()
        else:
            self.query_one("#rule-problem", Plain).update(f"the gateway refused: {message.error}")
            self.notify(message.error, title="Not saved", severity="error")
