"""The shipped detector list through real clients, under both prefilter engines (hyperscan and
the pure-Python fallback, HOOP_DETECTOR_ENGINE=python): sensitive text at the start, middle and
end of long values, in a 1 MB value and in non-ASCII text is masked; two adjacent columns never
form a match; look-alikes come back byte for byte; a large result whose rows are proven clean
in bulk is forwarded intact except the one row that holds a value; and a second session's
`select 1` stays quick while a large masked result streams."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import mysql_connection_toml, mysql_gateway, through, throwaway_database
from support.postgres import connect_target

SHIPPED = """
[[masking]]
name = "pii"
detectors = ["email", "credit_card", "us_ssn", "phone", "iban", "aws_access_key", "github_token", "jwt",
             "private_key", "labelled_secret"]
style = "redact"
"""
PAD = "lorem ipsum dolor sit amet 1.2.3 consectetur " * 300
CARD, SSN, MAIL = "4111 1111 1111 1111", "123-45-6789", "alice.smith@example.com"
# (a, b) stored -> (a, b) the client must see
CASES = [
    ((f"{CARD} {PAD}", "x"), (f"**** {PAD}", "x")),
    ((f"{PAD} {SSN} {PAD}", "x"), (f"{PAD} **** {PAD}", "x")),
    ((f"{PAD} {MAIL}", "x"), (f"{PAD} ****", "x")),
    (("4111 1111", "1111 1111"), ("4111 1111", "1111 1111")),  # across the column boundary
    (("alice@", "example.com"), ("alice@", "example.com")),
    (("call 555-123-", "4567"), ("call 555-123-", "4567")),
    (("カード 4111 1111 1111 1111 です", "Grüße +44 20 7946 0958 ✓"), ("カード **** です", "Grüße **** ✓")),
    (("4539578763621487", "666-12-3456"), ("4539578763621487", "666-12-3456")),  # fails Luhn; impossible SSN
    (("123e4567-e89b-12d3-a456-426614174000", "v10.0.19045.3803"), None),  # UUID, version
    (("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "123456789"), None),  # sha256, id
]
ENGINES = ["hyperscan", "python"]


def _expected() -> list[tuple[int, str, str]]:
    return [(i, *(seen or stored)) for i, (stored, seen) in enumerate(CASES)]


def _start(gw: GatewayProcess, engine: str) -> GatewayProcess:
    gw.env["HOOP_DETECTOR_ENGINE"] = engine
    gw.start()
    assert f"content detectors search with the {engine} engine" in gw.log()
    return gw


@pytest.fixture(params=ENGINES)
def pg_gw(request: pytest.FixtureRequest, make_gateway: Any, pg_target: dict[str, str]) -> GatewayProcess:
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS cases")
        conn.execute("CREATE TABLE cases (id int, a text, b text)")
        for i, (stored, _) in enumerate(CASES):
            conn.execute("INSERT INTO cases VALUES (%s, %s, %s)", (i, *stored))
    return _start(make_gateway(SHIPPED, start=False), str(request.param))


def _pg(gw: GatewayProcess) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True)


@pytest.mark.needs_postgres
def test_postgres_values_are_found_anywhere_and_never_across_columns(pg_gw: GatewayProcess) -> None:
    with _pg(pg_gw) as conn:
        assert conn.execute("SELECT id, a, b FROM cases ORDER BY id").fetchall() == _expected()
        big = conn.execute(f"SELECT repeat('é', 300000) || repeat('x', 448576) || ' {CARD} ' || 'end'").fetchone()
    assert big is not None and big[0] == "é" * 300000 + "x" * 448576 + " **** end"


@pytest.mark.needs_postgres
def test_postgres_bulk_result_intact_except_the_row_with_a_value(pg_gw: GatewayProcess) -> None:
    """60,000 rows read by psql: the buffers without a candidate pass in bulk, the one row
    holding an e-mail is masked, every other byte is what the server sent."""
    sql = (
        "SELECT g, md5(g::text), CASE WHEN g = 45000 THEN 'mail alice.smith@example.com' ELSE 'order-'||g END "
        "FROM generate_series(1, 60000) g"
    )
    out = pg_gw.psql("alice", pg_gw.token("alice"), sql, "-A", "-t")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    expected = [
        f"{g}|{hashlib.md5(str(g).encode()).hexdigest()}|{'mail ****' if g == 45000 else f'order-{g}'}"
        for g in range(1, 60001)
    ]
    assert lines == expected


@pytest.mark.needs_postgres
def test_second_session_stays_fast_while_a_large_masked_result_streams(pg_gw: GatewayProcess) -> None:
    """Every row of the big result holds an e-mail (each is masked): the gateway works through
    it read by read, so another session's `select 1` is answered between reads, not after."""
    token = pg_gw.token("alice")
    big_sql = "SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 400000) g"
    finished = threading.Event()
    result: dict[str, Any] = {}

    def stream() -> None:
        t0 = time.monotonic()
        result["out"] = pg_gw.psql("alice", token, big_sql, "-A", "-t", "-o", "/dev/null", timeout=300)
        result["seconds"] = time.monotonic() - t0
        finished.set()

    worker = threading.Thread(target=stream)
    with _pg(pg_gw) as conn:
        conn.execute("SELECT 1")  # logged in before the stream starts
        worker.start()
        time.sleep(0.3)
        latencies = []
        while not finished.is_set():
            t0 = time.monotonic()
            assert conn.execute("SELECT 1").fetchone() == (1,)
            latencies.append(time.monotonic() - t0)
            time.sleep(0.05)
    worker.join()
    assert result["out"].returncode == 0, result["out"].stderr
    assert len(latencies) >= 3, f"the big result took only {result['seconds']:.2f}s"
    assert max(latencies) < max(0.5, result["seconds"] / 4), (latencies, result["seconds"])


@pytest.fixture(params=ENGINES)
def my_gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayProcess]:
    with throwaway_database("detengine", "CREATE TABLE cases (id INT, a LONGTEXT, b TEXT) CHARACTER SET utf8mb4") as db:
        with mysql_gateway(
            tmp_path, ALICE + mysql_connection_toml(db) + SHIPPED, env={"HOOP_DETECTOR_ENGINE": str(request.param)}
        ) as gw:
            assert f"content detectors search with the {request.param} engine" in gw.log()
            with through(gw) as conn, conn.cursor() as cur:
                # written through the gateway: inserts are not masked, results are
                cur.executemany("INSERT INTO cases VALUES (%s, %s, %s)", [(i, *s) for i, (s, _) in enumerate(CASES)])
            yield gw


@pytest.mark.needs_mariadb
def test_mysql_values_are_found_anywhere_and_never_across_columns(my_gw: GatewayProcess) -> None:
    with through(my_gw) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, a, b FROM cases ORDER BY id")
        assert list(cur.fetchall()) == _expected()
        cur.execute(f"SELECT CONCAT(REPEAT('é', 300000), REPEAT('x', 448576), ' {CARD} end')")
        assert cur.fetchone() == ("é" * 300000 + "x" * 448576 + " **** end",)


@pytest.mark.needs_mariadb
def test_mysql_bulk_result_intact_except_the_row_with_a_value(my_gw: GatewayProcess) -> None:
    sql = (
        "SELECT seq, MD5(seq), IF(seq = 45000, 'mail alice.smith@example.com', CONCAT('order-', seq)) "
        "FROM seq_1_to_60000"
    )
    out = subprocess.run(
        ["mariadb", "-h", "127.0.0.1", "-P", str(my_gw.ports["mysql"]), "-u", "alice", f"-p{my_gw.tokens['alice']}"]
        + ["--skip-ssl", "-N", "-B", "-r", "my", "-e", sql],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    expected = [
        f"{g}\t{hashlib.md5(str(g).encode()).hexdigest()}\t{'mail ****' if g == 45000 else f'order-{g}'}"
        for g in range(1, 60001)
    ]
    assert out.stdout.splitlines() == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_hoop_check_names_the_engine(engine: str, make_gateway: Any) -> None:
    gw = make_gateway(SHIPPED, start=False)
    out = gw.cli("check", env={"HOOP_DETECTOR_ENGINE": engine})
    assert f"content detectors: {engine} engine" in out.stdout
    plain = make_gateway("", start=False).cli("check")
    assert "content detectors" not in plain.stdout
