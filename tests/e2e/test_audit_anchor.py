"""An audit trail anchored outside itself, through a real gateway and the real `hoop` CLI.

Deleting the newest audit events leaves a chain that still verifies; what reveals it is the
signed checkpoint the gateway wrote outside data_dir, or a head the auditor kept
(`--expect`). Recordings are sealed into the chain when their session ends.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.gateway import GatewayProcess, users_toml, write_config
from support.postgres import pg_connection_toml
from support.waiting import eventually

from hoop.core.audit_anchor import public_text

USERS = users_toml({"alice": ["dev"], "bob": ["dev", "dba"]})
HOLD = '\n[[rules]]\nname = "hold"\naction = "review"\nstatements = ["truncate"]\napprovers = ["dba"]\n'


@pytest.fixture
def gw(tmp_path: Path, pg_target: dict[str, str]) -> Iterator[GatewayProcess]:
    g = write_config(
        tmp_path, USERS + HOLD + pg_connection_toml(pg_target), settings="audit_checkpoint_interval = 0.5\n"
    )
    g.env["HOOP_TEST_PG_PASSWORD"] = pg_target["password"]
    g.start()
    g.issue_tokens("alice", "bob")
    yield g
    g.stop()


def checkpoints(gw: GatewayProcess) -> list[dict[str, object]]:
    path = gw.root / "audit-checkpoints.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def head(gw: GatewayProcess) -> str:
    return gw.cli("audit", "head").stdout.splitlines()[0]


def tamper(gw: GatewayProcess, sql: str, *args: object) -> list[sqlite3.Row]:
    """What someone with write access to data_dir can do, with the gateway stopped."""
    conn = sqlite3.connect(gw.root / "data" / "hoop.db")
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(sql, args).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def verify(gw: GatewayProcess, *args: str) -> tuple[int, str]:
    result = gw.cli("audit", "verify", *args, check=False)
    return result.returncode, result.stdout + result.stderr


def run_statements(gw: GatewayProcess, *sql: str) -> None:
    for statement in sql:
        assert gw.psql("alice", gw.tokens["alice"], statement).returncode == 0


def kill_a_session(gw: GatewayProcess) -> None:
    """bob kills alice's running query: the `session.kill` of issue 15's deleted tail."""
    victim = subprocess.Popen(
        ["psql", f"host=127.0.0.1 port={gw.ports['postgres']} user=alice dbname=pg sslmode=disable", "-X"]
        + ["-c", "SELECT pg_sleep(30)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PGPASSWORD": gw.tokens["alice"]},
    )

    def killed() -> None:
        # The newest session the store lists as open: until the journal has stored the victim's
        # start (and the earlier session's end), that may be one that already ended; try again.
        ids = [s["id"] for s in json.loads(gw.cli("sessions", "--json").stdout) if s["status"] == "open"]
        assert ids, "the session never showed up"
        result = gw.cli("kill", str(ids[0]), "--reason", "runaway query", "--token", gw.tokens["bob"], check=False)
        assert result.returncode == 0, result.stderr

    eventually(killed)
    victim.communicate(timeout=10)


def test_deleting_the_newest_events_is_reported_naming_the_last_verified_one(gw: GatewayProcess) -> None:
    run_statements(gw, "SELECT 1")
    kill_a_session(gw)
    run_statements(gw, "SELECT 2", "SELECT 3")

    def anchored_while_running() -> None:  # by the interval, not only at shutdown
        assert checkpoints(gw) and checkpoints(gw)[-1]["count"] == int(head(gw).split(":")[0])

    eventually(anchored_while_running)
    gw.stop()
    assert "INFO hoop.audit: audit checkpoint {" in gw.log()
    code, out = verify(gw)
    assert code == 0 and "chain intact" in out and "matches signed checkpoint" in out, out

    (kill,) = tamper(gw, "SELECT id FROM audit WHERE action = 'session.kill'")
    (last,) = tamper(gw, "SELECT max(id) AS id FROM audit")
    (before,) = tamper(gw, "SELECT id, action FROM audit WHERE id = ?", kill["id"] - 1)
    tamper(gw, "DELETE FROM audit WHERE id >= ?", kill["id"])
    code, out = verify(gw)
    assert code == 1, out
    assert "chain intact" in out  # the chain alone cannot tell ...
    deleted = last["id"] - kill["id"] + 1
    assert (  # ... the checkpoint can
        f"DELETED: {deleted} newest events deleted after event {before['id']} "
        f"(last verified: id {before['id']}, action {before['action']}, time "
    ) in out
    assert "audit trail NOT verified" in out


def test_expect_catches_a_deletion_without_any_checkpoint(gw: GatewayProcess) -> None:
    run_statements(gw, "SELECT 1", "SELECT 2")
    gw.stop()
    kept = head(gw)
    code, out = verify(gw, "--expect", kept)
    assert code == 0 and f"matches the expected head ({kept.split(':')[0]} events)" in out, out

    tamper(gw, "DELETE FROM audit WHERE id > ?", int(kept.split(":")[0]) - 3)
    (gw.root / "audit-checkpoints.jsonl").unlink()  # the checkpoints went too
    code, out = verify(gw)
    assert code == 0 and "NOT ANCHORED: no checkpoint file" in out, out  # says so; nothing contradicts the chain
    code, out = verify(gw, "--expect", kept)
    assert code == 1 and "DELETED: 3 newest events deleted" in out and f"head {kept} counts" in out, out

    code, out = verify(gw, "--expect", "12:abc")
    assert code == 1 and "--expect: expected COUNT:HASH" in out


def test_a_tampered_or_foreign_checkpoint_is_reported(gw: GatewayProcess) -> None:
    run_statements(gw, "SELECT 1")
    gw.stop()
    path = gw.root / "audit-checkpoints.jsonl"
    original = path.read_text()
    pinned = gw.cli("audit", "key").stdout.splitlines()[0]
    code, out = verify(gw, "--key", pinned)
    assert code == 0 and "pinned with --key" in out, out

    lines = original.splitlines()
    forged = json.loads(lines[-1])
    forged["count"] -= 2  # "the chain ended earlier": would hide a deletion
    path.write_text("\n".join(lines[:-1] + [json.dumps(forged)]) + "\n")
    code, out = verify(gw)
    assert code == 1 and f"FORGED CHECKPOINT at {path} line {len(lines)}: its signature is not valid" in out, out

    path.write_text(original)
    stranger = public_text(Ed25519PrivateKey.generate().public_key())
    code, out = verify(gw, "--key", stranger)
    assert code == 1 and "FOREIGN CHECKPOINT" in out and "pinned with --key" in out, out


def test_a_changed_truncated_or_missing_recording_is_reported(gw: GatewayProcess) -> None:
    run_statements(gw, "SELECT 'one'", "SELECT 'two'", "SELECT 'three'", "SELECT 'four'")
    gw.stop()
    code, out = verify(gw, "--recordings")
    assert code == 0 and "recordings: " in out and " sealed files match their digests" in out, out
    seals = [e["detail"] for e in json.loads(gw.cli("audit", "--json", "--action", "recording.sealed").stdout)]
    files = {Path(s["path"]).name: Path(s["path"]) for s in seals}
    assert {f"{i}.hoop.jsonl" for i in range(1, 5)} <= set(files)
    assert len(seals) == len(files)  # each sealed once, when its session ended

    changed, truncated, missing, grown = (files[f"{i}.hoop.jsonl"] for i in range(1, 5))
    changed.write_text(changed.read_text().replace("'one'", "'eno'"))
    truncated.write_bytes(truncated.read_bytes()[:-10])
    missing.unlink()
    extra = '[9.0,"q",{"text":"DROP TABLE t"}]\n'
    with grown.open("a") as fh:
        fh.write(extra)
    code, out = verify(gw, "--recordings")
    assert code == 1, out
    assert f"RECORDING {changed} (session 1): changed since it was sealed" in out
    assert f"RECORDING {truncated} (session 2): truncated to" in out
    assert f"RECORDING {missing} (session 3): missing" in out
    assert f"RECORDING {grown} (session 4): {len(extra)} bytes appended after it was sealed" in out
    assert verify(gw)[0] == 0  # recordings are only re-hashed when asked


def test_checkpoints_must_live_outside_data_dir_and_be_writable(tmp_path: Path) -> None:
    inside = write_config(tmp_path, USERS, settings='audit_checkpoint_file = "data/checkpoints.jsonl"\n')
    for command in ("check", "serve"):
        result = inside.cli(command, check=False)
        assert result.returncode == 2, result
        assert "gateway.audit_checkpoint_file" in result.stderr and "outside the store" in result.stderr

    (tmp_path / "a-file").write_text("")
    unwritable = write_config(tmp_path, USERS, settings='audit_checkpoint_file = "a-file/checkpoints.jsonl"\n')
    result = unwritable.cli("serve", check=False)
    assert result.returncode == 1 and "cannot append audit checkpoints to" in result.stderr, result
    assert "ready" not in result.stderr
