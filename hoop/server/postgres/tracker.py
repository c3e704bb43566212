"""Pairs statements sent upstream with the responses that finish them, for the recording.

PostgreSQL answers strictly in order, so a FIFO of units is enough: a simple `Query` unit
ends at ReadyForQuery (adding up the rows of each CommandComplete); an extended-protocol
`Execute` unit ends at its CommandComplete / ErrorResponse / EmptyQueryResponse /
PortalSuspended. Units still open at ReadyForQuery were skipped by the server after an
earlier error in the same batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hoop.core.store.records import review

CUT_OFF = "did not finish: the session ended"


@dataclass(slots=True)
class Unit:
    text: str
    simple: bool
    decision: str = "allow"
    rule: str = ""
    started: float = field(default_factory=time.time)
    rows: int | None = None
    error: str = ""
    tag: str = ""
    sample: list[Any] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # "schema.table.column" where known, else the name


def rows_from_tag(tag: str) -> int | None:
    """'SELECT 5' -> 5, 'INSERT 0 3' -> 3, 'BEGIN' -> None."""
    last = tag.rpartition(" ")[2]
    return int(last) if last.isdigit() else None


class Tracker:
    __slots__ = ("units", "finish")

    def __init__(self, finish: Callable[[Unit], None]) -> None:
        self.units: deque[Unit] = deque()
        self.finish = finish

    def push(self, unit: Unit) -> None:
        self.units.append(unit)

    @property
    def current(self) -> Unit | None:
        return self.units[0] if self.units else None

    def command_complete(self, tag: str) -> None:
        if not self.units:
            return
        unit = self.units[0]
        n = rows_from_tag(tag)
        unit.tag = tag if not unit.tag else f"{unit.tag}; {tag}"
        if n is not None:
            unit.rows = (unit.rows or 0) + n
        if not unit.simple:
            self.finish(self.units.popleft())

    def error(self, message: str) -> None:
        if not self.units:
            return
        unit = self.units[0]
        unit.error = message
        if not unit.simple:
            self.finish(self.units.popleft())

    def end_of_portal(self) -> None:
        """EmptyQueryResponse or PortalSuspended: an Execute finished without a tag."""
        if self.units and not self.units[0].simple:
            self.finish(self.units.popleft())
        elif self.units:
            pass  # an empty string inside a simple Query: the unit ends at ReadyForQuery

    def ready(self) -> None:
        units = self.units
        if units and units[0].simple:
            self.finish(units.popleft())
            return
        while units and not units[0].simple:
            unit = units.popleft()
            if not unit.error:
                unit.error = "not executed: an earlier message in the batch failed"
            self.finish(unit)

    def cut_off(self) -> None:
        """The session ended: statements sent but not answered (or held) end here."""
        while self.units:
            unit = self.units.popleft()
            if unit.decision == "review":  # it was waiting for approvers: never run now
                unit.decision = review("abandoned")
            unit.error = unit.error or CUT_OFF
            self.finish(unit)
