"""The typed records a session hands to the journal.

`StatementRecord` is the one shape of a finished statement (an SQL statement, an SSH exec
command, a line typed into a shell) whatever door it came through. It crosses to the journal
writer process as a pickle, so it is a `NamedTuple`: named and typed fields for the code, the
size and pickling cost of a plain tuple on the data path.

`version` says which layout a record has. It crosses to the writer as its plain tuple (a
NamedTuple pickles several times slower, on a thread that shares the GIL with the data path)
and the writer unpacks the fields by position, so every change of the fields (a new one at
the end, with a default; a new meaning) raises the version; the writer skips a record of a
version it does not know, with a line on its stderr, rather than store fields in the wrong
columns.

The vocabulary of stored sessions and statements is defined here, once, for every door:
`CloseStatus` for how a session ended and the `DECISIONS` a statement record may carry.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class CloseStatus(StrEnum):
    """How a session ended: the `status` of its row once it is no longer `open`."""

    CLOSED = "closed"  # the client ended it (quit, disconnect, end of input)
    KILLED = "killed"  # an approver or administrator ended it
    UPSTREAM_LOST = "upstream-lost"  # the server or target went away, or could not be reached
    UPSTREAM_ERROR = "upstream-error"  # the server sent what the gateway could not read
    PROTOCOL_ERROR = "protocol-error"  # the client sent bytes its protocol does not allow
    SHUTDOWN = "shutdown"  # the gateway stopped while the session ran
    # The gateway died with the session open: set at its next start, or on a shared store by
    # the gateway that declares it lost (hoop/core/store/gateways.py).
    INTERRUPTED = "interrupted"


OPEN = "open"  # the status of a session that has not ended

ALLOW, BLOCK, OBSERVED = "allow", "block", "observed"  # observed: a line seen in a shell, not judged
# A held statement's decision is "review:" + how the hold ended.
HOLD_OUTCOMES = ("approved", "denied", "expired", "cancelled", "abandoned")
DECISIONS = (ALLOW, BLOCK, OBSERVED, *(f"review:{o}" for o in HOLD_OUTCOMES))


def review(outcome: str) -> str:
    """The decision recorded for a statement whose hold ended with `outcome`."""
    return f"review:{outcome}"


LOBBY = "(lobby)"  # how a session with no connection (the SSH lobby) is shown


def connection_label(connection: str) -> str:
    """A session's connection as lists show it."""
    return connection or LOBBY


STATEMENT_RECORD_VERSION = 1


class StatementRecord(NamedTuple):
    text: str
    decision: str
    rule: str
    started: float  # epoch seconds when the statement arrived
    duration_ms: float
    rows: int | None = None
    error: str = ""  # the server's error, or the gateway's reason for not running it
    tag: str = ""  # the server's completion tag or the command's exit ("SELECT 3", "exit 0")
    columns: list[str] | None = None  # result columns, "schema.table.column" where known
    sample: list[Any] | None = None  # the first result rows, as the client saw them (masked)
    version: int = STATEMENT_RECORD_VERSION
