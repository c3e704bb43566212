"""[roles] in hoop.toml, the roles and approver scope of an identity, review rules that must
name approvers, and built-in rules that are disabled, never removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hoop.core.config import load_config
from hoop.core.errors import ConfigError, HoopError
from hoop.core.guardrails import GuardRule, builtin_rules
from hoop.core.roles import RolesConfig, RoleSet, Scope, roles_of
from hoop.core.rulebook import RuleBook
from hoop.core.store.base import Store

ROLES = RolesConfig(admin=("ops",), auditor=("security",))
RULES = [
    GuardRule("hold-payments", "review", statements=("update",), connections=("payments-*",), approvers=("pay",)),
    GuardRule("hold-deletes", "review", statements=("delete",), approvers=("dba",)),  # every connection
    GuardRule("off", "review", statements=("insert",), connections=("pg",), approvers=("dba",), enabled=False),
    GuardRule("no-drop", "block", statements=("drop",)),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hoop.toml"
    path.write_text(text)
    return path


def test_roles_table_is_read_and_checked(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[roles]\nadmin = ["ops"]\nauditor = ["security", "audit"]\n'))
    assert config.roles == RolesConfig(("ops",), ("security", "audit"))
    assert load_config(write(tmp_path, "")).roles == RolesConfig()
    with pytest.raises(ConfigError, match=r"roles\.approver: unknown key; expected one of admin, auditor"):
        load_config(write(tmp_path, '[roles]\napprover = ["dba"]\n'))
    with pytest.raises(ConfigError, match=r"roles\.admin: expected a list of group names"):
        load_config(write(tmp_path, '[roles]\nadmin = "ops"\n'))


def test_roles_and_scope_of_groups() -> None:
    assert roles_of(ROLES, RULES, {"ops"}) == RoleSet(admin=True)
    assert roles_of(ROLES, RULES, {"security"}).names == ["auditor"]
    pay = roles_of(ROLES, RULES, {"pay", "dev"})
    assert pay.names == ["approver"] and pay.scope == Scope(("hold-payments",), ("payments-*",))
    assert pay.scope.covers("payments-eu") and not pay.scope.covers("pg") and not pay.watches("pg")
    dba = roles_of(ROLES, RULES, {"dba"})
    assert dba.scope.rules == ("hold-deletes",)  # a disabled rule gives no scope
    assert dba.scope.covers("anything")  # a rule without `connections` covers every connection
    nobody = roles_of(ROLES, RULES, set())
    assert nobody.names == [] and not nobody.watches("pg")
    assert RoleSet.from_dict(pay.as_dict()) == pay


def test_a_review_rule_must_name_approvers(tmp_path: Path) -> None:
    text = '[[rules]]\nname = "hold-all"\naction = "review"\nstatements = ["delete"]\n'
    with pytest.raises(ConfigError, match=r"rules\[0\]\.approvers: rule hold-all .*names no approvers: add approvers"):
        load_config(write(tmp_path, text))
    dynamic = '[[rules]]\nname = "careful"\naction = "block"\nstatements = ["drop"]\ndynamic = "review"\n'
    with pytest.raises(ConfigError, match="careful"):
        load_config(write(tmp_path, dynamic))
    assert load_config(write(tmp_path, text + 'approvers = ["dba"]\n')).rules[0].approvers == ("dba",)


def test_a_stored_review_rule_without_approvers_still_loads(store: Store) -> None:
    book = RuleBook(store)
    book._write("guard", "legacy", {"name": "legacy", "action": "review", "statements": ["delete"]}, "x", deleted=False)
    guards, _ = book.current()
    assert [(g.name, g.approvers) for g in guards] == [("legacy", ())]
    with pytest.raises(ConfigError, match="names no approvers"):
        book.save("guard", {"name": "legacy", "action": "review", "statements": ["delete"]}, "ada")


def test_builtin_rules_are_disabled_with_a_reason_never_removed(store: Store) -> None:
    book = RuleBook(store)
    book.seed([], [], builtins=True)
    with pytest.raises(HoopError, match="built-in rules can be disabled, not removed"):
        book.remove("guard", "builtin-server-files", "ada")
    with pytest.raises(HoopError, match="a reason is required"):
        book.set_enabled("guard", "builtin-server-files", False, "ada", reason="  ")
    book.set_enabled("guard", "builtin-server-files", False, "ada", reason="maintenance")
    assert not next(g for g in book.current()[0] if g.name == "builtin-server-files").enabled
    book.seed([], [], builtins=True)  # an admin's choice survives a restart
    assert not next(g for g in book.current()[0] if g.name == "builtin-server-files").enabled
    book.set_enabled("guard", "builtin-server-files", True, "ada")
    assert next(g for g in book.current()[0] if g.name == "builtin-server-files").enabled


def test_seed_restores_a_builtin_rule_deleted_in_the_store(store: Store) -> None:
    book = RuleBook(store)
    book.seed([], [], builtins=True)
    body = json.loads(book.history("guard", "builtin-server-files")[-1]["body"])
    book._write("guard", "builtin-server-files", body, "cli:operator", deleted=True)  # the old bypass
    assert "builtin-server-files" not in {g.name for g in book.current()[0]}
    book.seed([], [], builtins=True)
    assert {r.name for r in builtin_rules()} <= {g.name for g in book.current()[0]}


def test_builtin_rules_switched_off_in_the_config_stay_off(store: Store) -> None:
    book = RuleBook(store)
    book.seed([], [], builtins=True)
    book.seed([], [], builtins=False)
    assert not any(g.name.startswith("builtin-") for g in book.current()[0])
    book.seed([], [], builtins=False)  # and are not restored while switched off
    assert not any(g.name.startswith("builtin-") for g in book.current()[0])
