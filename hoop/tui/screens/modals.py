"""Typed modal screens for decisions: each returns its answer (or None when dismissed).

Every action that changes something (approve, deny, grant, kill, a rule saved, switched or
removed) passes one of these first, naming what it acts on: one key press never acts, and a
second press of the same key lands in the dialog, where it means nothing.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from hoop.tui.inert import inert


class Confirm(ModalScreen[bool]):
    """Yes or no about one action. `details` (a Rich renderable built with hoop.tui.inert)
    names what the action touches. `y` or the Yes button acts; `n`, Escape or the No button
    cancels. No has the focus, so a stray Enter cancels too."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]
    AUTO_FOCUS = "#no"

    def __init__(self, title: str, details: Any, *, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text, self.details, self.yes = title, details, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(inert(self.title_text), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.details, id="confirm-details")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="warning")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AskText(ModalScreen[str | None]):
    """One line of text (a reason, a search, a time). Enter submits, Escape cancels.
    `required` refuses an empty answer with a message instead of submitting. The title and
    prompt may quote names: they are shown inert. `details` (a Rich renderable built with
    hoop.tui.inert) names what the answer acts on; Enter is then the confirmation."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        prompt: str,
        *,
        placeholder: str = "",
        value: str = "",
        required: bool = False,
        validate: object = None,
        details: Any = None,
    ) -> None:
        super().__init__()
        self.details = details
        self.title_text, self.prompt, self.placeholder = title, prompt, placeholder
        self.value, self.required = value, required
        self.check = validate  # callable(str) -> error text or "" (validation as you type)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(inert(self.title_text), classes="dialog-title")
            if self.details is not None:
                with VerticalScroll(classes="dialog-body"):
                    yield Static(self.details, id="ask-details")
            yield Label(inert(self.prompt))
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")
            yield Label("", id="problem", classes="problem")
            yield Label("Enter: OK   Escape: cancel", classes="dim")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _problem(self, text: str) -> str:
        if self.required and not text.strip():
            return "required"
        if callable(self.check):
            return str(self.check(text) or "")
        return ""

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#problem", Label).update(inert(self._problem(event.value) if event.value else ""))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        problem = self._problem(event.value)
        if problem:
            self.query_one("#problem", Label).update(inert(problem))
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


def duration_problem(text: str) -> str:
    from hoop.core.identity import parse_ttl

    try:
        parse_ttl(text.strip())
    except ValueError as exc:
        return str(exc)
    return ""


def seconds_problem(text: str) -> str:
    try:
        parse_clock(text)
    except ValueError:
        return "expected seconds (90) or minutes:seconds (1:30)"
    return ""


def parse_clock(text: str) -> float:
    """'90', '90.5', '1:30' or '1:02:03' -> seconds."""
    parts = text.strip().split(":")
    if not parts or len(parts) > 3 or any(p == "" for p in parts):
        raise ValueError(text)
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    if total < 0:
        raise ValueError(text)
    return total
