"""What the recording of a MySQL session keeps of its results, as PostgreSQL sessions do: the
column names ("schema.table.column" where the server names the origin, a view's columns as
their base columns) and the first rows exactly as the client got them, masked where a masking
rule applies, for text (COM_QUERY) and binary (prepared statement) results. `hoop rules test`
reads these samples to preview a draft masking rule, so MySQL history is now previewable.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import gateway_ca, mysql_connection_toml, mysql_gateway, through, throwaway_database

from hoop.core import recording

pytestmark = pytest.mark.needs_mariadb
PEOPLE = 5
MASKING = """
[[masking]]
name = "emails"
columns = ["people.email"]
style = "partial"
"""


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with throwaway_database(
        "hoop_smp",
        "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20), email VARCHAR(60), born DATE)",
        "INSERT INTO people SELECT seq, CONCAT('name-', seq), CONCAT('person', seq, '@corp.example'), "
        f"DATE_ADD('2000-01-01', INTERVAL seq DAY) FROM seq_1_to_{PEOPLE}",
        "CREATE VIEW v_people AS SELECT id AS pid, email AS contact FROM people",
    ) as name:
        yield name


@pytest.fixture(scope="module")
def gw(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with mysql_gateway(tmp_path_factory.mktemp("mysmp"), ALICE + mysql_connection_toml(db) + MASKING) as g:
        yield g


def _results(gw: GatewayProcess, texts: list[str], wait: float = 10) -> dict[str, dict[str, Any]]:
    """The "r" frame of each statement in `texts`, from the latest session's recording, read
    again until all are there (the journal writes in batches)."""
    deadline = time.monotonic() + wait
    while True:
        sessions = json.loads(gw.cli("sessions", "--json").stdout)
        found: dict[str, dict[str, Any]] = {}
        if sessions:
            path = gw.root / "recordings" / f"{max(s['id'] for s in sessions)}.hoop.jsonl"
            text = ""
            for _, kind, data in recording.iter_frames(path) if path.exists() else iter(()):
                if kind == "q":
                    text = data["text"]
                elif kind == "r" and text in texts:
                    found[text] = data
        if len(found) == len(texts) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _as_text(row: tuple[Any, ...]) -> list[str | None]:
    return [None if v is None else v.isoformat() if isinstance(v, datetime.date) else str(v) for v in row]


def test_text_results_record_columns_and_masked_sample(gw: GatewayProcess, db: str) -> None:
    queries = [
        "SELECT id, name, email FROM people ORDER BY id",
        "SELECT name AS who, email AS mail, 40 + 2 AS answer FROM people ORDER BY id DESC",
        "SELECT * FROM v_people ORDER BY pid",
        "SELECT id FROM people WHERE id > 100",
    ]
    conn = through(gw)
    got: dict[str, list[tuple[Any, ...]]] = {}
    with conn.cursor() as cur:
        for sql in queries:
            cur.execute(sql)
            got[sql] = list(cur.fetchall())
    conn.close()
    assert "@corp.example" in str(got[queries[0]]) and "person1@" not in str(got)  # the rule masks

    results = _results(gw, queries)
    plain, aliased, view, empty = (results[q] for q in queries)
    assert plain["columns"] == [f"{db}.people.id", f"{db}.people.name", f"{db}.people.email"]
    assert plain["rows"] == PEOPLE and plain["sample"] == [_as_text(r) for r in got[queries[0]][:3]]
    assert [r[1] for r in plain["sample"]] == ["name-1", "name-2", "name-3"]  # unmasked columns as they are
    # Aliases name their origin; a computed column has none and keeps its name.
    assert aliased["columns"] == [f"{db}.people.name", f"{db}.people.email", "answer"]
    assert aliased["sample"] == [_as_text(r) for r in got[queries[1]][:3]]
    # A view's columns are recorded as the base columns the masking rules see.
    assert view["columns"] == [f"{db}.people.id", f"{db}.people.email"]
    assert view["sample"] == [_as_text(r) for r in got[queries[2]][:3]]
    assert "sample" not in empty and empty["rows"] == 0
    assert "person1@" not in Path(gw.root, "recordings").joinpath(f"{_latest(gw)}.hoop.jsonl").read_text()


def test_binary_results_record_columns_and_masked_sample(gw: GatewayProcess, db: str) -> None:
    import mysql.connector as connector

    conn = connector.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user="alice",
        password=gw.tokens["alice"],
        database="my",
        ssl_ca=gateway_ca(gw),
        ssl_verify_cert=False,
        use_pure=True,
        autocommit=True,
    )
    cur = conn.cursor(prepared=True)
    sql = "SELECT id, email, born, name FROM people WHERE id <= ? ORDER BY id"
    cur.execute(sql, (4,))
    rows = cur.fetchall()
    conn.close()
    assert len(rows) == 4 and "person1@" not in str(rows)

    (result,) = _results(gw, [sql]).values()
    assert result["columns"] == [f"{db}.people.id", f"{db}.people.email", f"{db}.people.born", f"{db}.people.name"]
    assert result["rows"] == 4
    assert result["sample"] == [_as_text(r) for r in rows[:3]]
    assert result["sample"][0][2] == "2000-01-02"


def test_rules_test_previews_a_draft_mask_rule_on_mysql_history(gw: GatewayProcess) -> None:
    """The samples are what a draft rule is tried on: a rule on the names finds them."""
    sql = "SELECT name FROM people WHERE id <= 3 ORDER BY id"
    conn = through(gw)
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()
    assert _results(gw, [sql])[sql]["sample"] == [["name-1"], ["name-2"], ["name-3"]]
    draft = '[[masking]]\nname = "names"\ncolumns = ["people.name"]\nstyle = "redact"\n'
    report = json.loads(gw.cli("rules", "test", "mask", "--json", input=draft).stdout)
    assert report["counts"].get("masked", 0) >= 3
    assert any("people.name" in hit["text"] for hit in report["hits"])


def _latest(gw: GatewayProcess) -> int:
    return max(s["id"] for s in json.loads(gw.cli("sessions", "--json").stdout))
