"""The CLI's listings against a real gateway: JSON everywhere, filters, one line per event,
a header row, `…` where text is cut, and who may reach what."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.needs_postgres

HOLD = """
[[rules]]
name = "hold-cli-inserts"
action = "review"
statements = ["insert"]
approvers = ["dba"]
timeout = "1s"

[[rules]]
name = "block-cli-deletes"
action = "block"
statements = ["delete"]
"""
# A statement over several lines and longer than a line of a listing.
LONG = "INSERT INTO cli_listing_t\n  VALUES (" + ", ".join(str(i) for i in range(80)) + ")"


@pytest.fixture
def gw(make_gateway: Any) -> Any:
    gateway = make_gateway(HOLD)
    gateway.issue_tokens("alice", "bob")
    gateway.psql("alice", gateway.tokens["alice"], LONG)  # held, then expires after 1 s
    gateway.psql("alice", gateway.tokens["alice"], "DELETE FROM cli_listing_t WHERE id = 1")
    gateway.psql("bob", gateway.tokens["bob"], "SELECT 1")
    gateway.audit(until=lambda events: sum(e["action"] == "session.end" for e in events) >= 3)
    return gateway


def test_every_listing_speaks_json(gw: Any) -> None:
    for listing in (
        ["sessions"],
        ["audit"],
        ["approvals", "--all"],
        ["rules", "list"],
        ["token", "list"],
        ["connections"],
        ["users"],
    ):
        rows = json.loads(gw.cli(*listing, "--json").stdout)
        assert isinstance(rows, list) and rows, listing


def test_filters_narrow_sessions_audit_and_approvals(gw: Any) -> None:
    def users(*args: str) -> set[str]:
        return {r["user"] for r in json.loads(gw.cli("sessions", "--json", *args).stdout)}

    assert users() == {"alice", "bob"}
    assert users("--user", "bob") == {"bob"}
    assert users("--connection", "pg", "--since", "1h") == {"alice", "bob"}
    assert users("--connection", "nosuch") == set()
    assert users("--until", "2000-01-01") == set()
    assert users("--since", "2000-01-01T00:00", "--until", "1m") == set()  # all of them began within the minute

    blocked = json.loads(gw.cli("audit", "--json", "--decision", "block", "--user", "alice").stdout)
    assert [e["detail"]["text"] for e in blocked if e["action"] == "statement"] == [
        "DELETE FROM cli_listing_t WHERE id = 1"
    ]
    assert all(e["actor"] == "alice" for e in blocked)
    assert json.loads(gw.cli("audit", "--json", "--connection", "pg", "--user", "bob").stdout)
    assert not json.loads(gw.cli("audit", "--json", "--connection", "nosuch").stdout)

    expired = json.loads(gw.cli("approvals", "--json", "--decision", "expired", "--user", "alice").stdout)
    assert [a["rule"] for a in expired] == ["hold-cli-inserts"]
    assert not json.loads(gw.cli("approvals", "--json", "--all", "--user", "bob").stdout)

    bad = gw.cli("sessions", "--since", "yesterday", check=False)
    assert bad.returncode != 0 and "--since" in bad.stderr


def test_audit_prints_one_line_per_event(gw: Any) -> None:
    events = json.loads(gw.cli("audit", "--json").stdout)
    lines = gw.cli("audit").stdout.splitlines()
    assert len(lines) == len(events)
    held = next(line for line in lines if "INSERT INTO cli_listing_t" in line)
    assert "INSERT INTO cli_listing_t\\n  VALUES (0, 1" in held
    assert "…" in held and "79)" not in held


def test_approvals_have_a_header_and_mark_cut_statements(gw: Any) -> None:
    header, *rows = gw.cli("approvals", "--all").stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "USER", "CONNECTION", "RULE", "AGE", "STATEMENT"]
    (row,) = rows
    assert "expired" in row and "hold-cli-inserts" in row
    assert "INSERT INTO cli_listing_t\\n" in row and row.endswith("…")


def test_users_and_connections_say_who_may_reach_what(gw: Any) -> None:
    users = {u["name"]: u for u in json.loads(gw.cli("users", "--json").stdout)}
    assert users["alice"]["connections"] == ["pg"] and users["alice"]["approves"] == []
    assert users["bob"]["approves"] == ["hold-cli-inserts"]
    assert users["mallory"]["connections"] == []
    assert users["ada"]["roles"] == ["admin"] and users["audrey"]["roles"] == ["auditor"]
    text = gw.cli("users").stdout
    assert text.splitlines()[0].split() == ["NAME", "GROUPS", "ROLES", "CONNECTIONS", "APPROVES"]

    (pg,) = json.loads(gw.cli("connections", "--json").stdout)
    assert pg["name"] == "pg" and pg["type"] == "postgres" and pg["target"].startswith("hoop_app_")
    assert pg["users"] == ["alice", "bob", "carol"]
    assert "CANARY" not in gw.cli("connections").stdout + gw.cli("connections", "--json").stdout
