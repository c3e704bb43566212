"""Guardrails through real psql and psycopg: the whole corpus, rule changes applied live."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
from core.sql import corpus_postgres
from support.postgres import connect_target
from support.rules import rules_toml

pytestmark = pytest.mark.needs_postgres

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id int PRIMARY KEY, name text, email text, active bool DEFAULT true);
CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, user_id int, total numeric);
CREATE TABLE IF NOT EXISTS sessions (id int, user_id int);
CREATE TABLE IF NOT EXISTS staging (id int, payload text);
CREATE TABLE IF NOT EXISTS banned (id int);
CREATE TABLE IF NOT EXISTS drop_log (id int, note text);
CREATE TABLE IF NOT EXISTS truncate_history (id int);
CREATE TABLE IF NOT EXISTS "drop" (id int);
CREATE TABLE IF NOT EXISTS actions (id int, name text);
CREATE OR REPLACE VIEW active_users AS SELECT * FROM users WHERE active;
"""


@pytest.fixture
def corpus_gateway(make_gateway, pg_admin, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute(SCHEMA)
    custom = [r for r in corpus_postgres.RULES if not r.name.startswith("builtin-")]
    return make_gateway(rules_toml(custom))


def _refused(stderr: str) -> bool:
    """Refused by a rule, or answered as the syntax error it is (nothing ran either way)."""
    return "refused by Hoop" in stderr or "ERROR:  syntax error" in stderr


def _with_setup(sql: str) -> str:
    """EXECUTE of a name the corpus prepares elsewhere runs after that PREPARE, in one session:
    in a fresh session an unknown name is refused (its effect cannot be known)."""
    if sql.upper().startswith("EXECUTE "):
        name = sql.split()[1].split("(")[0].lower()
        prepare = next(p for p in corpus_postgres.ALLOW if p.lower().startswith(f"prepare {name} "))
        return f"{prepare};\n{sql}"
    return sql


def test_corpus_through_psql(corpus_gateway) -> None:  # type: ignore[no-untyped-def]
    token = corpus_gateway.token("alice")
    wrong = []
    for sql in corpus_postgres.BLOCK:
        result = corpus_gateway.psql("alice", token, None, "-1", input=sql)
        if not _refused(result.stderr):
            wrong.append(("not blocked", sql, result.stdout + result.stderr))
    for sql in corpus_postgres.ALLOW:
        result = corpus_gateway.psql("alice", token, None, "-1", input=_with_setup(sql))
        if _refused(result.stderr):
            wrong.append(("blocked", sql, result.stderr))
    assert not wrong, "\n".join(f"{what}: {sql!r}: {out}" for what, sql, out in wrong)


def test_corpus_through_psycopg_extended_protocol(corpus_gateway) -> None:  # type: ignore[no-untyped-def]
    token = corpus_gateway.token("alice")
    wrong = []
    with psycopg.connect(corpus_gateway.dsn("alice", token), autocommit=True) as conn:
        for expect, statements in (("block", corpus_postgres.BLOCK), ("allow", corpus_postgres.ALLOW)):
            for sql in statements:
                multi = ";" in sql.strip().rstrip(";")
                cursor = psycopg.ClientCursor(conn) if multi else conn.cursor()
                refused = False
                try:
                    with conn.transaction():
                        if sql.upper().startswith("EXECUTE "):
                            conn.execute(_with_setup(sql).split(";\n")[0], prepare=False)
                        if _is_copy(sql):  # COPY needs psycopg's copy() API, whatever the gateway does
                            with cursor.copy(sql) as copy:
                                for _ in copy:
                                    pass
                        else:
                            cursor.execute(sql) if multi else cursor.execute(sql, prepare=False)
                        raise _Rollback
                except _Rollback:
                    pass
                except psycopg.Error as exc:
                    refused = (exc.sqlstate == "42501" and "refused by Hoop" in str(exc)) or exc.sqlstate == "42601"
                if refused != (expect == "block"):
                    wrong.append((expect, sql))
        assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)
    assert not wrong, wrong


def _is_copy(sql: str) -> bool:
    upper = sql.upper()
    return upper.lstrip().startswith("COPY") and ("STDOUT" in upper or "STDIN" in upper)


class _Rollback(Exception):
    """Raised inside a transaction so an allowed statement leaves no trace."""


def test_builtin_rules_and_session_stays_usable(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway()
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
        for sql in (
            "SELECT rolpassword FROM pg_authid",
            "ALTER ROLE CURRENT_USER PASSWORD 'x'",
            "COPY (SELECT 1) TO PROGRAM 'id'",
            "SELECT pg_read_file('/etc/passwd')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="refused by Hoop: rule builtin-"):
                conn.execute(sql)
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # extended protocol inside a pipeline: the refusal discards until Sync, the rest runs
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.pipeline():
                conn.execute("SELECT 1")
                conn.execute("SELECT * FROM pg_shadow")
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_rule_added_with_cli_applies_within_a_second(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway()
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE scratch (id int)")
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)
        gw.admin("rules", "add", "guard", input='name = "no-scratch"\naction = "block"\ntables = ["scratch"]\n')
        started = time.monotonic()
        while True:
            try:
                conn.execute("SELECT count(*) FROM scratch")
            except psycopg.errors.InsufficientPrivilege as exc:
                assert "no-scratch" in str(exc)
                break
            assert time.monotonic() - started < 1.5, "rule not applied within a second"
            time.sleep(0.05)
        gw.admin("rules", "disable", "guard", "no-scratch")
        time.sleep(1.2)
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)
    listed = gw.cli("rules", "show", "guard", "no-scratch").stdout
    assert "v1 by ada" in listed and "v2 by ada" in listed  # the admin whose token made the change
    actions = [e["action"] for e in json.loads(gw.cli("audit", "--json").stdout)]
    assert {"rule.save", "rule.disable", "rules.reload"} <= set(actions)


def test_rules_test_reports_on_recorded_history(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway()
    token = gw.token("alice")
    gw.psql("alice", token, "CREATE TABLE IF NOT EXISTS ledger (id int, note text)")
    gw.psql("alice", token, "INSERT INTO ledger VALUES (1, 'ok')")
    gw.psql("alice", token, "DELETE FROM ledger WHERE id = 1")
    gw.psql("alice", token, "SELECT note FROM ledger")
    time.sleep(0.5)
    draft = (
        'name = "ledger-writes"\naction = "review"\nstatements = ["insert", "delete"]\ntables = ["ledger"]\n'
        'approvers = ["dba"]\n'
    )
    report = json.loads(gw.cli("rules", "test", "guard", "--json", input=draft).stdout)
    assert report["counts"] == {"held": 2}
    assert sorted(h["text"].split()[0] for h in report["hits"]) == ["DELETE", "INSERT"]
    human = gw.cli("rules", "test", "guard", input=draft).stdout
    assert "would have 2 held" in human
    gw.psql("alice", token, "DROP TABLE ledger")


def test_passwords_typed_into_statements_are_not_recorded(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway()
    token = gw.token("alice")
    typed = "CANARY-typed-pw-7f3a9c"
    refused = gw.psql("alice", token, f"ALTER ROLE CURRENT_USER PASSWORD '{typed}'")
    assert "refused by Hoop: rule builtin-password-change" in refused.stderr
    gw.psql("alice", token, f"CREATE ROLE canary_role LOGIN PASSWORD '{typed}'")  # refused too
    statements = json.dumps(gw.audit(until=lambda events: "CURRENT_USER PASSWORD" in json.dumps(events)))
    assert "ALTER ROLE CURRENT_USER PASSWORD '****'" in statements
    gw.stop()
    for path in Path(gw.root).rglob("*"):
        if path.is_file() and path.name != "hoop.toml":
            assert typed.encode() not in path.read_bytes(), f"typed password found in {path}"
