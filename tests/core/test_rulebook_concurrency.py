"""Gateways that start together on one store seed the rule book from the same hoop.toml at
the same moment, and admins may save the same rule through two gateways at once: every one
of them succeeds, and each change is one version (no unique-key failure ends a gateway's start)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from support.stores import opened

from hoop.core.guardrails import rule_from_mapping
from hoop.core.rulebook import RuleBook
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store

GUARDS = [
    rule_from_mapping(
        {"name": f"no-drop-{i}", "action": "block", "statements": ["drop table"]}, file="hoop.toml", key=f"rules[{i}]"
    )
    for i in range(5)
]


def _at_once(count: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_gateways_seeding_at_once_each_start_and_every_rule_has_one_version(store_target: Path | Secret) -> None:
    def seed(_: int) -> None:
        store = open_store(store_target)
        try:
            RuleBook(store).seed(GUARDS, [], builtins=True)
        finally:
            store.close()

    assert _at_once(4, seed) == []
    with opened(store_target) as store:
        versions = store.query("SELECT kind, name, count(*) AS n FROM rules GROUP BY kind, name")
    assert versions and all(row["n"] == 1 for row in versions), versions
    assert {f"no-drop-{i}" for i in range(5)} <= {row["name"] for row in versions}


def test_admins_saving_one_rule_through_two_gateways_get_a_version_each(store_target: Path | Secret) -> None:
    def save(n: int) -> None:
        store = open_store(store_target)
        try:
            body = {
                "name": "shared",
                "action": "block",
                "statements": ["drop table"],
                "description": f"saved by admin{n}",
            }
            RuleBook(store).save("guard", body, f"admin{n}")
        finally:
            store.close()

    assert _at_once(4, save) == []
    with opened(store_target) as store:
        rows = store.query("SELECT version FROM rules WHERE name = 'shared' ORDER BY version")
    assert [row["version"] for row in rows] == [1, 2, 3, 4]
