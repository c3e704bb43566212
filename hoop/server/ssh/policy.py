"""Exec requests are commands in the pipeline: allow, block, or hold for approval.

Exit statuses the gateway itself returns (the target's own status is passed back unchanged):

- 126  the command was not run: blocked by a rule, or its approval was denied, expired or
       cancelled (126 is the shell's "found but could not be executed").
- 255  the gateway could not reach or log in to the target (what `ssh` itself returns when
       the connection fails).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hoop.core.pipeline import Decision
from hoop.server.session import ALLOW, BLOCK, Session

EXIT_NOT_RUN = 126
EXIT_TARGET = 255


@dataclass(frozen=True, slots=True)
class Admission:
    """What became of an exec request before it could run."""

    run: bool
    decision: str  # what its statement record says: allow, block, review:approved, review:denied, ...
    rule: str
    error: str = ""  # why it was not run


async def admit(session: Session, command: str, decision: Decision, say: Callable[[str], None]) -> Admission:
    """Refuse the command `decision` blocks, and wait for approvers where it holds it. `say`
    writes one line to the user's stderr; the caller records the statement (once, whatever
    became of it)."""
    if decision.action == "block":
        say(f"hoop: refused: {decision.reason}")  # the reason names the rule
        return Admission(False, BLOCK, decision.rule, decision.reason)
    if decision.action == "review":
        outcome = await session.hold(command, decision, lambda m: say(f"hoop: {m}"))
        if not outcome.approved:
            say(f"hoop: not run: {outcome.message}")
            return Admission(False, outcome.decision, decision.rule, outcome.reason)
        say(f"hoop: {outcome.message}")
        return Admission(True, outcome.decision, decision.rule)
    return Admission(True, ALLOW, decision.rule)
