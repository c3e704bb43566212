"""What the MySQL response parser (results.py) and the session that owns it (relay.py) share.

`Unit` is one command waiting for its answer: the relay queues it when the command goes
upstream (or is answered by the gateway), the parser fills in what the answer said (rows,
affected rows, error, the recording's columns and sample) and takes it off the queue.

`ResponseEvents` is everything the parser needs from its owner. The parser calls it when the
answer says something the session acts on (settings reported, a statement prepared, a result
over a limit, an answer complete, the server asking for a client file) and asks it for the
masking rules in force. It never reaches into the owner otherwise, so the parser can be read,
tested and replaced on its own, and the owner imports the parser, never the reverse.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from hoop.core.lineage import Taint
from hoop.core.masking import ColumnRef, MaskPolicy
from hoop.core.sql.textmode import TextMode
from hoop.server.mysql.packets import ColumnDefinition

Derived = list[Taint | None]


@dataclass(slots=True)
class Unit:
    """One command waiting for its response."""

    text: str
    kind: str  # result | prepare | fields | single | stats | fetch
    decision: str = "allow"
    rule: str = ""
    record: bool = True
    binary: bool = False
    stmt_id: int = 0
    reply: bytes | None = None  # answered by the gateway (a wire packet), nothing goes upstream
    started: float = field(default_factory=time.time)
    ended: float = 0.0
    rows: int = 0
    affected: int | None = None
    error: str = ""
    mode: TextMode | None = None  # the TextMode the text was read under (kept for COM_STMT_EXECUTE)
    internal: bool = False  # the gateway's own command: its answer never reaches the client
    # For the recording, when this statement's result is sampled (recording.sampled): the
    # first result set's column names ("schema.table.column" where known) and first rows.
    columns: list[str] | None = None
    sample: list[list[str | None]] | None = None


class ResponseEvents(Protocol):
    """What `results.Responses` needs from the session that owns it."""

    def mask_policy(self) -> MaskPolicy:
        """The masking rules and result limits for this session now (asked per result set)."""
        ...

    def resolve_columns(self, refs: list[ColumnRef | None]) -> list[ColumnRef | None]:
        """Result column origins as masking rules name them (a view's column: its base column)."""
        ...

    def derived_columns(self, policy: MaskPolicy, text: str, cols: list[ColumnDefinition]) -> Derived | None:
        """Each column's lineage for the mask plan (result_lineage.derived_columns): raises
        NeedsCatalog when the catalog must be read first (the owner then calls `resume`),
        LineageRefused when the result is refused."""
        ...

    def database_reported(self, name: str) -> None:
        """The server reported the session's current database (COM_INIT_DB, USE)."""
        ...

    def audit(self, action: str, **detail: object) -> None:
        """Record an audit event of this session."""
        ...

    def upstream_write(self, data: bytes) -> None:
        """Send wire bytes to the server."""
        ...

    def unit_done(self, unit: Unit) -> None:
        """`unit`, the head of the queue, is answered and has left the queue."""
        ...

    def settings_reported(self, changes: dict[str, str]) -> None:
        """The server reported session settings (session_vars.parse_state)."""
        ...

    def settings_unknown(self, reason: str) -> None:
        """The server refused to report the session settings."""
        ...

    def prepared_ok(self, unit: Unit, stmt_id: int) -> None:
        """The server prepared `unit`'s text as statement `stmt_id`."""
        ...

    def limit_reached(self, unit: Unit) -> None:
        """`unit`'s result passed a row or byte limit: the rest of it is withheld."""
        ...

    def infile_requested(self) -> bool:
        """The server asks for a client file (LOAD DATA LOCAL INFILE): True when the client
        may send it, and the owner then relays the upload; False refuses it."""
        ...
