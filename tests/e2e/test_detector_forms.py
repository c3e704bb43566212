"""Content detectors through real clients (psql, mariadb): phone numbers in every separator
style, labelled and column-named SSNs, labelled secrets are masked; look-alikes (versions, IP
addresses, dates, decimals, UUIDs, digests, ids, numbers failing Luhn, impossible SSNs, prose)
come back byte for byte. The masking rule has detectors only, no column patterns."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import ROOT, mysql_connection_toml, mysql_gateway, throwaway_database
from support.postgres import connect_target

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DETECTORS_ONLY = """
[[masking]]
name = "detforms"
detectors = ["email", "credit_card", "us_ssn", "phone", "iban", "aws_access_key", "github_token", "jwt",
             "private_key", "labelled_secret"]
style = "redact"
"""

# (stored value, what the client must see)
POSITIVES = [
    ("call 555.123.4567 today", "call **** today"),
    ("(555) 123-4567", "****"),
    ("555 123 4567", "****"),
    ("+1 555.123.4567", "****"),
    ("+1 (555) 123-4567", "****"),
    ("+44 20 7946 0958", "****"),
    ("+33 1 23 45 67 89", "****"),
    ("ssn: 123456789", "ssn: ****"),
    ("SSN=219099999", "SSN=****"),
    ('{"ssn": "123456789"}', '{"ssn": "****"}'),
    ("social security number 123456789", "social security number ****"),
    (f"aws_secret_access_key={AWS_SECRET}", "aws_secret_access_key=****"),
    (f"AWS_SECRET_ACCESS_KEY: {AWS_SECRET}", "AWS_SECRET_ACCESS_KEY: ****"),
    (f'{{"aws_secret_access_key": "{AWS_SECRET}"}}', '{"aws_secret_access_key": "****"}'),
    ("api_key: 0123456789abcdef", "api_key: ****"),
    ("password=hunter2hunter2", "password=****"),
]
DECOYS = [
    "1.2.3.4",
    "10.11.19",
    "192.168.100.200",
    "2026.12.07",
    "2026-12-07",
    "3.14159265",
    "1234567.89",
    "123e4567-e89b-12d3-a456-426614174000",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "d41d8cd98f00b204e9800998ecf8427e",
    "123456789",
    "1234567890",
    "4539578763621487",
    "ssn: 000123456",
    "ssn: 666123456",
    "ssn: 912345678",
    "password: short",
    "Enter your password: then press return",
]
CASES = POSITIVES + [(d, d) for d in DECOYS]
# A column named ssn: a bare valid SSN is masked, an impossible one is not.
SSN_COLUMN = [("123456789", "****"), ("219099999", "****"), ("912345678", "912345678"), ("123450000", "123450000")]


def _rows() -> list[tuple[int, str, str | None]]:
    ssn = [s for s, _ in SSN_COLUMN]
    return [(i, value, ssn[i] if i < len(ssn) else None) for i, (value, _) in enumerate(CASES)]


def _expected_values(sep: str) -> list[str]:
    return [f"{i}{sep}{seen}" for i, (_, seen) in enumerate(CASES)]


def _expected_ssn() -> list[str]:
    return [seen for _, seen in SSN_COLUMN]


@pytest.fixture
def pg_gw(make_gateway, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS detforms")
        conn.execute("CREATE TABLE detforms (id int, v text, ssn text)")
        for row in _rows():
            conn.execute("INSERT INTO detforms VALUES (%s, %s, %s)", row)
    return make_gateway(DETECTORS_ONLY)


@pytest.mark.needs_postgres
def test_psql_sees_detected_values_masked_and_look_alikes_unchanged(pg_gw) -> None:  # type: ignore[no-untyped-def]
    token = pg_gw.token("alice")
    values = pg_gw.psql("alice", token, "SELECT id, v FROM detforms ORDER BY id", "-A", "-t")
    assert values.returncode == 0, values.stderr
    assert values.stdout.splitlines() == _expected_values("|")
    ssn = pg_gw.psql("alice", token, "SELECT ssn FROM detforms WHERE ssn IS NOT NULL ORDER BY id", "-A", "-t")
    assert ssn.stdout.splitlines() == _expected_ssn()
    doc = pg_gw.psql(
        "alice", token, f"""SELECT '{{"aws_secret_access_key": "{AWS_SECRET}", "n": 1}}'::jsonb""", "-A", "-t"
    )
    assert doc.stdout.strip() == '{"n": 1, "aws_secret_access_key": "****"}'


@pytest.fixture
def my_db() -> Iterator[str]:
    with throwaway_database("detforms", "CREATE TABLE detforms (id INT, v TEXT, ssn VARCHAR(11))") as name:
        conn = pymysql.connect(**ROOT, database=name, autocommit=True)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO detforms VALUES (%s, %s, %s)", _rows())
        conn.close()
        yield name


@pytest.fixture
def my_gw(my_db: str, tmp_path: Path) -> Iterator[GatewayProcess]:
    with mysql_gateway(tmp_path, ALICE + mysql_connection_toml(my_db) + DETECTORS_ONLY) as g:
        yield g


@pytest.mark.needs_mariadb
def test_mariadb_client_sees_detected_values_masked_and_look_alikes_unchanged(my_gw: GatewayProcess) -> None:
    script = "SELECT id, v FROM detforms ORDER BY id;\nSELECT ssn FROM detforms WHERE ssn IS NOT NULL ORDER BY id;\n"
    out = subprocess.run(
        ["mariadb", "-h", "127.0.0.1", "-P", str(my_gw.ports["mysql"]), "-u", "alice", f"-p{my_gw.tokens['alice']}"]
        + ["--skip-ssl", "-N", "-B", "-r", "my"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == _expected_values("\t") + _expected_ssn()
