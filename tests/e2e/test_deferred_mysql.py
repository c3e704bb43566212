"""Stored programs through the MySQL door, judged by what they run: bodies where they are
defined, calls and trigger firings by the bodies the gateway reads from the server's catalog,
including programs created directly on the server. Every test asserts the upstream effect."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import ROOT, mysql_connection_toml, mysql_gateway, through, throwaway_database
from support.rules import rule_toml

pytestmark = pytest.mark.needs_mariadb

RULES = (
    rule_toml("no-wipe", statements=["delete", "update"], where="missing")
    + rule_toml("no-unbounded-purge", statements=["delete"], where="missing-or-trivial", tables=["purge_*"])
    + rule_toml("no-truncate", statements=["truncate"])
)


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with throwaway_database("hoop_d") as name:
        yield name


@pytest.fixture(scope="module")
def gw(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    body = ALICE + mysql_connection_toml(db) + RULES
    with mysql_gateway(tmp_path_factory.mktemp("mydef"), body) as g:
        yield g


@pytest.fixture
def direct(db: str) -> Iterator[pymysql.Connection]:
    conn = pymysql.connect(**ROOT, database=db, autocommit=True)
    yield conn
    conn.close()


def _run(conn: pymysql.Connection, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _table(direct: pymysql.Connection, rows: int = 3) -> str:
    name = f"t_{secrets.token_hex(3)}"
    _run(direct, f"CREATE TABLE {name} (id INT, x INT)")
    _run(direct, f"INSERT INTO {name} SELECT seq, seq FROM seq_1_to_{rows}")
    return name


def _count(direct: pymysql.Connection, sql: str) -> int:
    return int(_run(direct, sql)[0][0])


def _refused(gw: GatewayProcess, sql: str, rule: str) -> None:
    with through(gw) as conn, pytest.raises(pymysql.err.MySQLError) as info:
        _run(conn, sql)
    assert "refused by Hoop" in str(info.value) and rule in str(info.value), info.value


def test_procedure_whose_body_deletes_everything_is_refused_where_defined(gw, direct, db) -> None:  # type: ignore[no-untyped-def]
    t = _table(direct)
    for sql in (
        f"CREATE PROCEDURE p_{t}() BEGIN DELETE FROM {t}; END",
        f"CREATE PROCEDURE p_{t}(a INT) BEGIN IF a > 0 THEN UPDATE {t} SET x = 0; END IF; END",
        f"CREATE TRIGGER tr_{t} AFTER UPDATE ON {t} FOR EACH ROW DELETE FROM {t}",
        f"CREATE EVENT ev_{t} ON SCHEDULE EVERY 1 DAY DO BEGIN TRUNCATE {t}; END",
    ):
        _refused(gw, sql, "no-")
    assert _count(direct, f"SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'") == 0
    assert _count(direct, f"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'") == 0
    assert _count(direct, f"SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}'") == 0
    with through(gw) as conn:  # a bounded body is fine, and the procedure is created
        _run(conn, f"CREATE PROCEDURE ok_{t}(a INT) BEGIN DELETE FROM {t} WHERE id = a; END")
        _run(conn, f"CALL ok_{t}(1)")
    assert _count(direct, f"SELECT COUNT(*) FROM {t}") == 2


def test_call_of_a_procedure_created_on_the_server_is_refused(gw, direct, db) -> None:  # type: ignore[no-untyped-def]
    t = _table(direct)
    _run(direct, f"CREATE PROCEDURE wipe_{t}() BEGIN DELETE FROM {t}; END")
    _run(direct, f"CREATE FUNCTION zap_{t}() RETURNS INT MODIFIES SQL DATA BEGIN UPDATE {t} SET x = 0; RETURN 1; END")
    _refused(gw, f"CALL wipe_{t}()", f"in {db}.wipe_{t}, which this statement runs")
    _refused(gw, f"SELECT zap_{t}()", "no-wipe")
    assert _count(direct, f"SELECT COUNT(*) FROM {t} WHERE x = id") == 3


def test_insert_firing_a_trigger_created_on_the_server_is_refused(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t, other = _table(direct), _table(direct)
    _run(direct, f"CREATE TRIGGER tr_{t} AFTER INSERT ON {t} FOR EACH ROW BEGIN DELETE FROM {other}; END")
    _refused(gw, f"INSERT INTO {t} VALUES (9, 9)", "no-wipe")
    assert _count(direct, f"SELECT COUNT(*) FROM {t}") == 3 and _count(direct, f"SELECT COUNT(*) FROM {other}") == 3
    with through(gw) as conn:  # the trigger fires on INSERT only
        _run(conn, f"UPDATE {t} SET x = 0 WHERE id = 1")
    assert _count(direct, f"SELECT COUNT(*) FROM {t} WHERE x = 0") == 1


def test_a_parameter_in_a_where_clause_is_a_value_not_a_column(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t = f"purge_{secrets.token_hex(3)}"
    _run(direct, f"CREATE TABLE {t} (id INT)")
    _run(direct, f"INSERT INTO {t} SELECT seq FROM seq_1_to_3")
    _run(direct, f"CREATE PROCEDURE p_{t}(IN everything INT) BEGIN DELETE FROM {t} WHERE everything; END")
    _refused(gw, f"CALL p_{t}(1)", "no-unbounded-purge")
    assert _count(direct, f"SELECT COUNT(*) FROM {t}") == 3


def test_view_calling_a_function_created_on_the_server_runs_it(gw, direct, db) -> None:  # type: ignore[no-untyped-def]
    t, target = _table(direct), _table(direct)
    _run(direct, f"CREATE FUNCTION zap_{t}() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM {target}; RETURN 1; END")
    _run(direct, f"CREATE VIEW v_{t} AS SELECT id, zap_{t}() AS z FROM {t}")
    _refused(gw, f"SELECT * FROM v_{t}", f"in {db}.zap_{t}, which this statement runs")
    assert _count(direct, f"SELECT COUNT(*) FROM {target}") == 3
