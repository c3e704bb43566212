"""A session may cancel or end its own backend.

The client sees its real upstream backend PID, so `SELECT pg_terminate_backend(<that pid>)`
is how a program ends its own session (psycopg's tests do, libraries do on a broken
connection). The built-in rule against reaching other sessions refuses every signal function
because it cannot know which PID a literal names; the door can. Only the plain form is mapped:
one statement, the function with one integer literal that equals this session's backend PID.
Anything else (an expression, a parameter, a second statement, another PID) stays judged as
before. Unqualified `pg_backend_pid()` is not accepted as the argument: a schema earlier on the
search_path could shadow it with a function returning another session's PID.
"""

from __future__ import annotations

import re

from hoop.core.guardrails import OTHER_SESSIONS_RULE
from hoop.core.pipeline import Decision, Pipeline, Subject

OWN_SIGNAL = re.compile(
    r"\s*select\s+(?:pg_catalog\s*\.\s*)?pg_(?:cancel|terminate)_backend\s*\(\s*(\d{1,10})\s*\)\s*;?\s*",
    re.I | re.A,
)


def own_signal(pipeline: Pipeline, subject: Subject, text: str, own_pid: int, decision: Decision) -> Decision:
    """`decision`, or the decision without the other-sessions flag when `text` only signals
    the session's own backend (every other rule still applies)."""
    if decision.rule != OTHER_SESSIONS_RULE or decision.classification is None:
        return decision
    m = OWN_SIGNAL.fullmatch(text)
    if m is None or int(m.group(1)) != own_pid or len(decision.classification.statements) != 1:
        return decision
    return pipeline.without_flag(subject, decision, "other_sessions")
