"""Widgets that show strings literally: text from users and servers is never read as markup
and its control characters are shown as escapes (see hoop.tui.inert)."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable, Static

from hoop.tui.inert import inert


def _shown(content: Any) -> Any:
    return inert(content) if isinstance(content, str) else content


class Plain(Static):
    """A Static whose strings are shown inert; Rich renderables are shown as they are (build
    them with `inert()` where they hold untrusted text)."""

    def __init__(self, content: Any = "", **kwargs: Any) -> None:
        super().__init__(_shown(content), **kwargs)

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        super().update(_shown(content), layout=layout)


class PlainTable(DataTable[Any]):
    """A DataTable whose string cells are shown inert (DataTable reads strings as markup)."""

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None, label: Any = None) -> Any:
        return super().add_row(*(_shown(c) for c in cells), height=height, key=key, label=label)
