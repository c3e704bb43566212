"""The session kit: what every door (PostgreSQL, MySQL, SSH target, SSH lobby, and any later
protocol) shares, written once.

A door does wire work only: framing, login wording, and turning an outcome into its own
error, notice or exit status. Everything between login and goodbye that is not wire work
goes through one `Session`:

1. **Open.** `Session(services, identity, connection, protocol, client)` opens the stored
   session row and its recording. `session.start(kill, kind=..., **detail)` audits
   `session.start` and lists the session as live, so approvers can watch and kill it; `kill`
   is the door's `Killer`: end this connection, telling the client why in its protocol.
2. **Judge.** `session.judge(text, prepared, mode)` asks the one policy pipeline. The answer
   is a `Decision`: allow, block (with the rule and reason) or review.
3. **Hold.** For a review, `await session.hold(text, decision, notify)` runs the approval
   and returns a wire-neutral `HoldOutcome`: approved or not, the decision to record
   (`review:approved`, `review:denied`, ...), a `refusal` kind (`denied`, `timeout`,
   `cancelled`) and one line for the client. The door words it (SQLSTATE 42501 or 57014,
   MySQL 1142 or 1317, SSH exit 126).
4. **Record.** `session.record(text, decision, rule, started=..., ...)` writes the one
   `StatementRecord` of a finished statement: its row, its two recording frames, its audit
   event. Every statement is recorded once, whatever became of it.
5. **Close.** `session.close(CloseStatus.X)` ends the bracket once: the first status wins,
   except that a session an approver killed always ends `killed`. It audits `session.end`
   and takes the session off the live list.

The seams are the `typing.Protocol`s in `seams.py`: what the kit needs from a door (`Killer`,
`Notify`) and what a door must offer the gateway (`Door`, registered in `doors.py`). The
vocabulary (`CloseStatus`, decisions) lives with the record in `hoop.core.store.records`,
since the journal that stores them is part of the core.
"""

from hoop.core.store.records import ALLOW, BLOCK, OBSERVED, CloseStatus, StatementRecord, review
from hoop.server.session.bracket import Session
from hoop.server.session.holds import HoldOutcome
from hoop.server.session.seams import Door, Killer, Notify

__all__ = [
    "ALLOW",
    "BLOCK",
    "OBSERVED",
    "CloseStatus",
    "Door",
    "HoldOutcome",
    "Killer",
    "Notify",
    "Session",
    "StatementRecord",
    "review",
]
