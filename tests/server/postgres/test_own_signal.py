"""Which signal statements the PostgreSQL door takes as the session's own (pure checks; the end
to end proof is in test_backend_identity.py)."""

from __future__ import annotations

import pytest

from hoop.core.guardrails import builtin_rules
from hoop.core.pipeline import Pipeline, Subject
from hoop.server.postgres import frontend
from hoop.server.postgres.own_signal import own_signal, signals_another

PG = Subject("alice", frozenset({"dev"}), "pg", "postgres")
OWN = 4242
SIBLING = 5151  # another session of the same user on the same connection


def MINE(pid: int) -> bool:
    return pid in (OWN, SIBLING)


PREPARED = "SELECT pg_terminate_backend($1)"


def _judge(text: str, *, prepared: bool = False) -> tuple[str, str | None]:
    pipeline = Pipeline(builtin_rules())
    decision, send = own_signal(pipeline, PG, text, OWN, MINE, pipeline.check(PG, text), prepared=prepared)
    return decision.action, send


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT pg_terminate_backend(4242)", ("allow", None)),
        (" select PG_CATALOG.pg_cancel_backend( 4242 ) ; ", ("allow", None)),
        ("SELECT pg_terminate_backend(pg_backend_pid())", ("allow", "SELECT pg_catalog.pg_terminate_backend(4242)")),
        ("SELECT pg_terminate_backend(5151)", ("allow", None)),
        ("SELECT pg_terminate_backend(4243)", ("block", None)),
        ("SELECT pg_terminate_backend(4242 + 1)", ("block", None)),
        ("SELECT pg_terminate_backend(4242); SELECT pg_terminate_backend(1)", ("block", None)),
        ("SELECT pg_terminate_backend(4242), pg_terminate_backend(1)", ("block", None)),
        ("SELECT pg_terminate_backend(pg_backend_pid() + 1)", ("block", None)),
        ("SELECT pg_signal_backend(4242, 9)", ("block", None)),
        (PREPARED, ("block", None)),  # a parameter only in a prepared statement
    ],
)
def test_only_the_plain_own_forms_are_allowed(text: str, expected: tuple[str, str | None]) -> None:
    assert _judge(text) == expected


def test_a_prepared_parameter_is_allowed_and_checked_at_bind() -> None:
    assert _judge(PREPARED, prepared=True) == ("allow", None)
    assert _judge("SELECT pg_cancel_backend($1::int)", prepared=True) == ("allow", None)

    def bind(value: bytes | None, fmt: int = 0) -> memoryview:
        return memoryview(frontend.bind("", "", [value], param_formats=[fmt]))

    assert not signals_another(PREPARED, bind(b"4242"), MINE)
    for width in (2, 4, 8):
        assert not signals_another(PREPARED, bind(OWN.to_bytes(width, "big", signed=True), 1), MINE)
    assert not signals_another(PREPARED, bind(b"5151"), MINE)
    assert signals_another(PREPARED, bind(b"4243"), MINE)
    assert signals_another(PREPARED, bind((4243).to_bytes(4, "big"), 1), MINE)
    assert signals_another(PREPARED, bind(None), MINE)
    assert signals_another(PREPARED, bind(b"4242 or so"), MINE)
    assert signals_another(PREPARED, bind(b"\x00\x10\x92", 1), MINE)  # a width no integer has
    assert not signals_another("SELECT $1", bind(b"1"), MINE)  # not a signal statement
