"""What every area screen shares: the area bar, the identity banner, the footer, and the two
attributes the app hands down (`snapshot`, `who`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer

from hoop.tui.widgets.bars import AreaBar, Banner

if TYPE_CHECKING:
    from textual import getters

    from hoop.tui.app import HoopApp, Who
    from hoop.tui.data import Snapshot


class HoopScreen(Screen[None]):
    """A full screen of the Hoop console: it always runs inside `HoopApp`."""

    if TYPE_CHECKING:  # for the checker, `app` is the HoopApp with its `act` and `history`
        app = getters.app(HoopApp)


class AreaScreen(HoopScreen):
    AREA = ""
    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True, init=False)
    who: reactive[Who | None] = reactive(None, always_update=True, init=False)

    def compose(self) -> ComposeResult:
        yield AreaBar(self.AREA)
        yield Banner(id="banner")
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        if self.who is not None:
            self.watch_who(self.who)
        if self.snapshot is not None:
            self.watch_snapshot(self.snapshot)

    def watch_who(self, who: Who | None) -> None:
        if self.is_mounted and who is not None:
            self.query_one(Banner).show(who)
            self.refresh_bindings()  # actions offered depend on the caller's roles

    def watch_snapshot(self, snapshot: Snapshot | None) -> None:
        if self.is_mounted and snapshot is not None:
            try:
                self.show_snapshot(snapshot)
            except NoMatches:  # the app is closing and the screen's widgets are gone
                pass

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Areas that list live data override this."""


def reset_table(table: Any, columns: tuple[tuple[str, int], ...]) -> None:
    """Empty a table and give it fixed-width columns: widths never depend on which rows came
    first or on when the table measured them, so the same data always looks the same."""
    table.clear(columns=True)
    for label, width in columns:
        table.add_column(label, width=width)
