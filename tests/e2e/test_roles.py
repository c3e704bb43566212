"""Who may do what on the control plane, tried as users with different rights would.

The users (tests/conftest.py): ada is an admin (group ops), audrey an auditor (security),
bob approves `hold-deletes` on `pg` (dba), pete approves only `hold-payments` on connections
named `payments-*` (none exists), alice is a plain user (dev).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from support.gateway import HOOP
from support.postgres import connect_target
from support.waiting import eventually

from hoop.control_client import ControlClient, ControlError
from hoop.core.rulebook import RuleBook
from hoop.core.store.sqlite import SqliteStore

pytestmark = pytest.mark.needs_postgres

RULES = """
[[users]]
name = "pete"
groups = ["payments-approvers"]

[[rules]]
name = "no-destructive"
action = "block"
statements = ["drop", "truncate"]

[[rules]]
name = "hold-deletes"
action = "review"
statements = ["delete"]
connections = ["pg"]
approvers = ["dba"]
timeout = "30s"

[[rules]]
name = "hold-payments"
action = "review"
statements = ["update"]
connections = ["payments-*"]
approvers = ["payments-approvers"]
"""


@pytest.fixture
def gw(make_gateway, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS victims")
        conn.execute("CREATE TABLE victims (id int)")
        conn.execute("INSERT INTO victims VALUES (1), (2)")
    gateway = make_gateway(RULES)
    gateway.issue_tokens("ada", "audrey", "bob", "pete", "alice")
    return gateway


def control(gw, user: str) -> ControlClient:  # type: ignore[no-untyped-def]
    return ControlClient(gw.root / "data" / "control.sock", gw.tokens[user])


def refused(gw, user: str, op: str, **params: object) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ControlError) as caught:
        control(gw, user).call(op, **params)
    return str(caught.value)


def drop_is_blocked(gw) -> None:  # type: ignore[no-untyped-def]
    result = gw.psql("alice", gw.tokens["alice"], "DROP TABLE victims")
    assert "refused by Hoop: rule no-destructive" in result.stderr, result.stderr
    with psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-destructive"):
            conn.execute("DROP TABLE victims")


def test_an_approver_of_one_rule_cannot_change_rules(gw) -> None:  # type: ignore[no-untyped-def]
    off = {"name": "no-destructive", "action": "block", "statements": ["drop", "truncate"], "enabled": False}
    assert "admin" in refused(gw, "pete", "rules.save", kind="guard", body=off)
    assert "admin" in refused(gw, "pete", "rules.disable", kind="guard", name="no-destructive", reason="mine now")
    assert "admin" in refused(gw, "pete", "rules.remove", kind="guard", name="no-destructive")
    assert "admin" in refused(gw, "bob", "rules.save", kind="guard", body=off)
    mask = {"name": "unmask", "columns": ["*.email"], "enabled": False}
    assert "admin" in refused(gw, "pete", "rules.save", kind="mask", body=mask)
    time.sleep(1.2)  # a change would have been applied by now
    drop_is_blocked(gw)
    events = gw.audit("--action", "control.refused", until=lambda e: len(e) >= 5)
    assert {(e["actor"], e["detail"]["op"]) for e in events} >= {
        ("pete", "rules.save"),
        ("pete", "rules.disable"),
        ("pete", "rules.remove"),
        ("bob", "rules.save"),
    }


def test_kill_and_watch_follow_the_scope(gw) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True) as conn:
        conn.execute("SELECT 1")
        [session] = eventually(lambda: control(gw, "ada").call("live") or None)
        assert session["user"] == "alice" and session["connection"] == "pg"
        assert control(gw, "pete").call("live") == []  # his rule covers no connection that exists
        assert control(gw, "audrey").call("live") == [session]
        assert control(gw, "alice").call("live") == [session]  # her own
        assert control(gw, "bob").call("live") == [session]  # hold-deletes covers pg
        assert "outside" in refused(gw, "pete", "kill", id=session["id"], reason="because I can")
        assert "auditor" in refused(gw, "audrey", "kill", id=session["id"], reason="just looking")
        assert conn.execute("SELECT 2").fetchone() == (2,)  # still alive
        control(gw, "bob").call("kill", id=session["id"], reason="runaway")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 3")


def test_an_admin_kills_any_session(gw) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True) as conn:
        conn.execute("SELECT 1")
        [session] = eventually(lambda: control(gw, "ada").call("live") or None)
        gw.cli("kill", str(session["id"]), "--reason", "maintenance", "--token", gw.tokens["ada"])
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 2")


def _held_delete(gw) -> tuple[subprocess.Popen[str], int]:  # type: ignore[no-untyped-def]
    held = subprocess.Popen(
        ["psql", gw.dsn("alice", gw.tokens["alice"]), "-X", "-c", "DELETE FROM victims WHERE id = 1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pending = eventually(lambda: json.loads(gw.cli("approvals", "--json").stdout) or None)
    return held, int(pending[0]["id"])


def test_an_approver_decides_only_the_requests_of_their_rules(gw) -> None:  # type: ignore[no-untyped-def]
    held, request = _held_delete(gw)
    assert "may decide on rule hold-deletes" in refused(gw, "pete", "approve", id=request)
    assert "may decide on rule hold-deletes" in refused(gw, "pete", "deny", id=request, reason="no")
    # An admin is not an approver of the rule: admins decide only where they approve.
    assert "may decide on rule hold-deletes" in refused(gw, "ada", "approve", id=request)
    assert "may decide on rule hold-deletes" in refused(gw, "audrey", "approve", id=request)
    assert json.loads(gw.cli("approvals", "--json").stdout)[0]["status"] == "pending"
    control(gw, "bob").call("approve", id=request, reason="ticket 7")
    out, _ = held.communicate(timeout=10)
    assert "DELETE 1" in out


def test_a_stored_review_rule_without_approvers_is_decided_by_nobody(gw) -> None:  # type: ignore[no-untyped-def]
    gw.stop()
    book = RuleBook(SqliteStore(gw.root / "data" / "hoop.db"))
    book._write(
        "guard",
        "hold-deletes",
        {"name": "hold-deletes", "action": "review", "statements": ["delete"]},
        "x",
        deleted=False,
    )
    gw.start()
    held, request = _held_delete(gw)
    for user in ("bob", "ada", "pete", "audrey"):
        assert "names no approvers" in refused(gw, user, "approve", id=request)
    held.kill()
    held.communicate()


def test_an_auditor_reads_but_changes_nothing(gw) -> None:  # type: ignore[no-untyped-def]
    who = control(gw, "audrey").call("whoami")
    assert who["roles"] == ["auditor"]
    body = {"name": "no-destructive", "action": "block", "statements": ["drop"], "enabled": False}
    assert "admin" in refused(gw, "audrey", "rules.save", kind="guard", body=body)
    assert "admin" in refused(gw, "audrey", "rules.enable", kind="guard", name="no-destructive")
    drop_is_blocked(gw)


def test_the_cli_without_a_token_cannot_change_rules(gw) -> None:  # type: ignore[no-untyped-def]
    removed = gw.cli("rules", "remove", "guard", "builtin-server-files", check=False)
    assert removed.returncode == 1 and "token" in removed.stderr, removed.stderr
    disabled = gw.cli("rules", "disable", "guard", "no-destructive", "--reason", "x", check=False)
    assert disabled.returncode == 1 and "token" in disabled.stderr
    added = gw.cli("rules", "add", "guard", check=False, input='name = "x"\naction = "block"\ntables = ["t"]\n')
    assert added.returncode == 1 and "token" in added.stderr
    as_pete = gw.cli(
        "rules", "remove", "guard", "builtin-server-files", check=False, env={"HOOP_TOKEN": gw.tokens["pete"]}
    )
    assert as_pete.returncode == 1 and "admin" in as_pete.stderr
    time.sleep(1.2)
    result = gw.psql("alice", gw.tokens["alice"], "select pg_read_file('/etc/hostname')")
    assert "refused by Hoop: rule builtin-server-files" in result.stderr, result.stderr
    assert "builtin-server-files" in gw.cli("rules", "list").stdout


def test_a_builtin_rule_is_disabled_with_a_reason_and_enabled_again(gw) -> None:  # type: ignore[no-untyped-def]
    removed = gw.admin("rules", "remove", "guard", "builtin-server-files", check=False)
    assert removed.returncode == 1 and "built-in rules can be disabled, not removed" in removed.stderr
    no_reason = gw.admin("rules", "disable", "guard", "builtin-server-files", check=False)
    assert no_reason.returncode == 1 and "reason" in no_reason.stderr
    gw.admin("rules", "disable", "guard", "builtin-server-files", "--reason", "migration window, ticket 12")
    listed = gw.cli("rules", "list").stdout
    assert any("off" in line and "builtin-server-files" in line for line in listed.splitlines())

    def passes() -> bool:
        out = gw.psql("alice", gw.tokens["alice"], "select pg_read_file('/etc/hostname')")
        return "refused by Hoop" not in out.stderr  # PostgreSQL itself may still refuse the role

    eventually(passes)
    gw.admin("rules", "enable", "guard", "builtin-server-files")
    eventually(lambda: not passes())
    events = gw.audit("--action", "rule.disable", until=lambda e: len(e) >= 1)
    assert events[0]["detail"]["reason"] == "migration window, ticket 12"
    assert events[0]["actor"] == "ada"
    gw.audit("--action", "rule.enable", until=lambda e: len(e) >= 1)
    # A rule of one's own under the built-ins' prefix would be one nobody could remove.
    squatter = 'name = "builtin-mine"\naction = "block"\nstatements = ["vacuum"]\n'
    made = gw.admin("rules", "add", "guard", check=False, input=squatter)
    assert made.returncode == 1 and "kept for the rules Hoop ships" in made.stderr, made.stderr


def test_a_builtin_rule_deleted_by_the_old_bypass_comes_back_at_start(gw) -> None:  # type: ignore[no-untyped-def]
    gw.stop()
    book = RuleBook(SqliteStore(gw.root / "data" / "hoop.db"))
    latest = book.history("guard", "builtin-server-files")[-1]
    book._write("guard", "builtin-server-files", json.loads(latest["body"]), "cli:operator", deleted=True)
    gw.start()
    result = gw.psql("alice", gw.tokens["alice"], "select pg_read_file('/etc/hostname')")
    assert "refused by Hoop: rule builtin-server-files" in result.stderr, result.stderr


def test_a_review_rule_without_approvers_fails_check(tmp_path: Path) -> None:
    config = tmp_path / "hoop.toml"
    config.write_text('[[rules]]\nname = "hold-all"\naction = "review"\nstatements = ["delete"]\n')
    result = subprocess.run(HOOP + ["check", "-c", str(config)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "rules[0]" in result.stderr and "hold-all" in result.stderr and "add approvers" in result.stderr


def test_whoami(gw) -> None:  # type: ignore[no-untyped-def]
    ada = gw.cli("whoami", "--token", gw.tokens["ada"]).stdout
    assert "ada" in ada and "admin" in ada
    pete = json.loads(gw.cli("whoami", "--json", env={"HOOP_TOKEN": gw.tokens["pete"]}).stdout)
    assert pete["user"] == "pete" and pete["roles"] == ["approver"]
    assert pete["scope"] == {"rules": ["hold-payments"], "connections": ["payments-*"]}
    nobody = gw.cli("whoami", check=False)
    assert nobody.returncode == 1 and "token" in nobody.stderr
    health = gw.cli("health", check=False)  # read-only status needs no token
    assert "recording" in health.stdout, health.stdout + health.stderr
