"""Exec requests are commands in the pipeline: allow, block, or hold for approval.

Exit statuses the gateway itself returns (the target's own status is passed back unchanged):

- 126  the command was not run: blocked by a rule, or its approval was denied, expired or
       cancelled (126 is the shell's "found but could not be executed").
- 255  the gateway could not reach or log in to the target (what `ssh` itself returns when
       the connection fails).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hoop.core.pipeline import Subject

EXIT_NOT_RUN = 126
EXIT_TARGET = 255


async def admit(
    services: Any, identity: Any, connection: Any, session: Any, command: str, say: Callable[[str], None]
) -> int | None:
    """None when the command may run; otherwise the exit status to return without running it.

    `say` writes one line to the user's stderr."""
    subject = Subject(identity.name, identity.groups, connection.name, "shell")
    decision = services.pipeline.check(subject, command)
    session.frame("q", {"text": command, "decision": decision.action, "rule": decision.rule, "reason": decision.reason})
    if decision.action == "block":
        say(f"hoop: refused: {decision.reason}")  # the reason names the rule
        session.statement(command, "block", decision.rule, error=decision.reason)
        session.audit("ssh.exec.block", command=command, rule=decision.rule, reason=decision.reason)
        return EXIT_NOT_RUN
    if decision.action == "review":
        approvals = getattr(services, "approvals", None)
        if approvals is None:  # fail closed when approvals are not configured
            say(f"hoop: rule {decision.rule} requires approval, which this gateway cannot take")
            session.statement(command, "block", decision.rule, error="approvals unavailable")
            return EXIT_NOT_RUN
        started = time.time()
        outcome = await approvals.hold(
            session=session, subject=subject, text=command, decision=decision, notify=lambda m: say(f"hoop: {m}")
        )
        if outcome.status != "approved":
            say(
                f"hoop: not run: request #{outcome.approval_id} {outcome.status}"
                + (f" ({outcome.reason})" if outcome.reason else "")
            )
            session.statement(command, outcome.status, decision.rule, started=started, error=outcome.reason)
            return EXIT_NOT_RUN
        say(f"hoop: approved (#{outcome.approval_id}){' by ' + ', '.join(outcome.by) if outcome.by else ''}")
    return None


def scp_transfer(command: str) -> dict[str, str] | None:
    """Legacy scp (`scp -O`) runs `scp -t PATH` (upload) or `scp -f PATH` (download) remotely."""
    parts = command.split()
    if not parts or parts[0] != "scp":
        return None
    direction = "upload" if "-t" in parts else "download" if "-f" in parts else ""
    if not direction:
        return None
    return {"direction": direction, "path": parts[-1]}
