"""The line at the top of every area: the areas (current one highlighted) and who you are,
or plainly that live actions are unavailable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from hoop.tui.inert import inert

if TYPE_CHECKING:
    from hoop.tui.app import Who

AREA_LABELS = (
    ("sessions", "1 Sessions"),
    ("approvals", "2 Approvals"),
    ("rules", "3 Rules"),
    ("recordings", "4 Recordings"),
)


class AreaBar(Static):
    def __init__(self, current: str) -> None:
        super().__init__(id="area-bar")
        self.current = current

    def on_mount(self) -> None:
        text = Text()
        for name, label in AREA_LABELS:
            style = "bold reverse" if name == self.current else "dim"
            text.append(f" {label} ", style=style)
            text.append(" ")
        self.update(text)


class Banner(Static):
    """Identity when the gateway answered; otherwise a warning line that live actions are off."""

    def show(self, who: Who) -> None:
        online = who.online
        self.set_class(not online, "offline")
        prefix = "" if online else "LIVE ACTIONS UNAVAILABLE: "
        self.update(inert(prefix + who.describe()))  # a user name or the gateway's error
