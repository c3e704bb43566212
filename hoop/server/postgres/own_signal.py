"""A user may cancel or end the backends of their own sessions.

The client sees its real upstream backend PID, so `SELECT pg_terminate_backend(...)` of that
PID is how a program ends its own session, or a pool another of its connections (drivers'
tests do; so do pools dropping a broken connection). The built-in rule against reaching other
sessions refuses every signal function because it cannot know which PID an argument names; the
door can: a PID is "mine" when it is the backend of a live session of the same user on the same
connection (see PostgresDoor.pid_is_mine). Three plain forms are taken, each the whole
statement and the signal function's only argument:

- an integer literal naming one of my PIDs;
- `pg_backend_pid()`: sent as the literal PID with the function qualified by `pg_catalog`, so
  a schema earlier on the search_path cannot swap in a function returning another PID;
- the parameter `$1` of a prepared statement: allowed at Parse, and each Bind whose value is
  not one of my PIDs is refused as the built-in rule refuses it.

Every other rule still applies (the decision is judged again without the other-sessions flag);
any other form (an expression, a second statement, another PID) is judged as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hoop.core.guardrails import OTHER_SESSIONS_RULE
from hoop.core.pipeline import Decision, Pipeline, Subject
from hoop.server.postgres import codec

Mine = Callable[[int], bool]  # is this PID the backend of one of the user's sessions here?

_CALL = r"\s*select\s+(?:pg_catalog\s*\.\s*)?pg_(cancel|terminate)_backend\s*\(\s*{}\s*\)\s*;?\s*"
LITERAL = re.compile(_CALL.format(r"(\d{1,10})"), re.I | re.A)
OWN_PID_CALL = re.compile(_CALL.format(r"(?:pg_catalog\s*\.\s*)?pg_backend_pid\s*\(\s*\)"), re.I | re.A)
PARAMETER = re.compile(_CALL.format(r"\$1(?:\s*::\s*(?:int|integer|int4|int8|bigint))?"), re.I | re.A)


def own_signal(
    pipeline: Pipeline,
    subject: Subject,
    text: str,
    own_pid: int,
    mine: Mine,
    decision: Decision,
    *,
    prepared: bool,
) -> tuple[Decision, str | None]:
    """`decision`, or the decision without the other-sessions flag when `text` only signals
    a backend of the user's own sessions; with the text to send in its place, when it must
    change (`own_pid`: this session's backend)."""
    if decision.rule != OTHER_SESSIONS_RULE or decision.classification is None:
        return decision, None
    if len(decision.classification.statements) != 1:
        return decision, None
    send = None
    if m := LITERAL.fullmatch(text):
        if not mine(int(m.group(2))):
            return decision, None
    elif m := OWN_PID_CALL.fullmatch(text):
        send = f"SELECT pg_catalog.pg_{m.group(1).lower()}_backend({own_pid})"
    elif not (prepared and PARAMETER.fullmatch(text)):
        return decision, None
    again = pipeline.without_flag(subject, decision, "other_sessions")
    if send is not None and again.action != "allow":  # a held text is sent as written: keep it refused
        return decision, None
    return again, send


def signals_another(text: str, bind: memoryview, mine: Mine) -> bool:
    """Does this Bind of a prepared `pg_*_backend($1)` name a PID not of the user's sessions?
    A value the door cannot read as an integer counts as another PID (fail closed)."""
    if not PARAMETER.fullmatch(text):
        return False
    try:
        b = codec.parse_bind(bind[5:])
    except Exception:  # a Bind the codec cannot read: the server refuses it too
        return True
    if len(b.params) != 1 or b.params[0] is None:
        return True
    value = b.params[0]
    binary = (b.param_formats or [0])[0] == 1
    try:
        pid = int.from_bytes(value, "big", signed=True) if binary and len(value) in (2, 4, 8) else None
        if not binary:
            pid = int(value.decode("ascii"))
    except ValueError:
        return True
    return pid is None or not mine(pid)
