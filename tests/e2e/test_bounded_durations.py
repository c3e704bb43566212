"""Token lifetimes and grants are finite and bounded, from the CLI and the control endpoint
alike, and a token row stored with an endless expiry is refused at login (fail closed) while
`hoop token list` still shows it."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
from typing import Any

import pytest
from support.waiting import eventually

pytestmark = pytest.mark.needs_postgres

HOLD = """
[[rules]]
name = "hold-selects"
action = "review"
statements = ["select"]
approvers = ["dba"]
timeout = "60s"
"""


def pending(gw: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(gw.cli("approvals", "--json").stdout)
    assert rows, "no request waiting yet"
    return rows


def raw_control(gw: Any, line: bytes) -> dict[str, Any]:
    """One request written byte for byte (json.dumps would never write 1e309)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(gw.root / "data" / "control.sock"))
        sock.sendall(line + b"\n")
        reply: dict[str, Any] = json.loads(sock.makefile("rb").readline())
        return reply


def test_token_issue_refuses_endless_and_overlong_lifetimes(make_gateway: Any) -> None:
    gw = make_gateway()
    for ttl, why in (("inf", "a finite"), ("nan", "a finite"), ("0", "positive"), ("1e309", "a finite")):
        out = gw.cli("token", "issue", "alice", "--ttl", ttl, check=False)
        assert out.returncode == 1 and f"--ttl: duration must be {why}" in out.stderr, out.stderr
    long = gw.cli("token", "issue", "alice", "--ttl", "31d", check=False)
    assert long.returncode == 1 and "longer than the maximum of 30d ([gateway] max_token_ttl)" in long.stderr
    assert json.loads(gw.cli("token", "list", "--json").stdout) == []  # nothing was issued, not even clipped


def test_grant_is_bounded_from_cli_and_control_endpoint(make_gateway: Any) -> None:
    gw = make_gateway(HOLD)
    alice, bob = gw.token("alice"), gw.token("bob")
    held = subprocess.Popen(
        ["psql", gw.dsn("alice", alice), "-X", "-c", "select 1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        rid = eventually(lambda: pending(gw)[0]["id"])
        for grant in ("inf", "nan", "9h"):
            out = gw.cli("approve", str(rid), "--token", bob, "--grant", grant, check=False)
            assert out.returncode == 1 and "--grant:" in out.stderr, out.stderr
        assert "maximum of 8h ([gateway] max_grant)" in out.stderr
        for value in (b"1e309", b'"inf"', b"Infinity", b"NaN", b"-1", b"28801"):
            line = b'{"op": "approve", "id": %d, "token": "%s", "grant_seconds": %s}' % (rid, bob.encode(), value)
            reply = raw_control(gw, line)
            assert reply["ok"] is False and "grant" in reply["error"], (value, reply)
        assert [r["id"] for r in pending(gw)] == [rid]  # every refusal decided nothing
        gw.cli("deny", str(rid), "--token", bob, "--reason", "no")
        held.communicate(timeout=10)
    finally:
        if held.poll() is None:
            held.kill()
    db = sqlite3.connect(gw.root / "data" / "hoop.db")
    assert db.execute("SELECT count(*) FROM grants").fetchone() == (0,)
    db.close()


def test_legacy_endless_token_is_refused_and_listed(make_gateway: Any) -> None:
    gw = make_gateway()
    token = gw.token("alice")
    assert gw.psql("alice", token, "select 1").returncode == 0
    db = sqlite3.connect(gw.root / "data" / "hoop.db")
    with db:  # as an older release stored `--ttl inf`
        db.execute("UPDATE tokens SET expires = ?", (float("inf"),))
    db.close()
    refused = gw.psql("alice", token, "select 1")
    assert refused.returncode != 0 and "no valid expiry" in refused.stderr
    listed = gw.cli("token", "list")
    assert "never (invalid)" in listed.stdout and "invalid" in listed.stdout
    [row] = json.loads(gw.cli("token", "list", "--json").stdout)
    assert row["state"] == "invalid" and row["expires"] == "never (invalid)"
