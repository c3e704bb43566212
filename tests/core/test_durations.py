"""Durations are finite and bounded: token lifetimes, grants, hold timeouts and the settings
that bound them refuse inf, NaN, zero, negative and absurd values, naming the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.holds import BOB, HELD, Gate, settled

from hoop.core.config import load_config
from hoop.core.errors import ConfigError, HoopError
from hoop.core.guardrails import rule_from_mapping
from hoop.core.identity import TokenService, parse_ttl
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store

CONFIG = """
[gateway]
data_dir = "state"
{settings}
[[users]]
name = "alice"
groups = ["dev"]
"""


def config(tmp_path: Path, settings: str = "") -> Path:
    path = tmp_path / "hoop.toml"
    path.write_text(CONFIG.format(settings=settings))
    return path


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "infd", "nanh", "1e309", "0", "-5m", "0s", "soon", ""])
def test_parse_ttl_refuses_what_never_ends(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


def test_parse_ttl_names_the_maximum_it_refuses() -> None:
    assert parse_ttl("30m", 3600) == 1800
    with pytest.raises(ValueError, match=r"longer than the maximum of 1h \(\[gateway\] max_grant\)"):
        parse_ttl("2h", 3600, "[gateway] max_grant")
    with pytest.raises(ValueError, match="longer than the maximum"):
        parse_ttl("99999999d")  # finite, and absurd


def test_gateway_maxima_default_and_validate(tmp_path: Path) -> None:
    gw = load_config(config(tmp_path)).gateway
    assert (gw.max_token_ttl, gw.max_grant) == (30 * 86400, 8 * 3600)
    gw = load_config(config(tmp_path, 'max_token_ttl = "7d"\nmax_grant = 600')).gateway
    assert (gw.max_token_ttl, gw.max_grant) == (7 * 86400, 600)
    for bad in ("max_grant = inf", "max_grant = nan", 'max_token_ttl = "inf"', "max_token_ttl = 0", "max_grant = -1"):
        with pytest.raises(ConfigError, match=r"gateway\.max_(grant|token_ttl)"):
            load_config(config(tmp_path, bad))
    with pytest.raises(ConfigError, match="longer than the maximum"):
        load_config(config(tmp_path, 'max_token_ttl = "400d"'))
    with pytest.raises(ConfigError, match="gateway.max_token_ttl: expected at least 5m"):
        load_config(config(tmp_path, 'max_token_ttl = "1m"'))


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_other_numbers_in_the_config_are_finite(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="gateway.parse_timeout: expected a positive, finite number"):
        load_config(config(tmp_path, f"parse_timeout = {value}"))


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), "1e309", "99999d", 0, -1])
def test_hold_timeout_is_bounded(timeout: object) -> None:
    with pytest.raises(ConfigError, match="rules.x.timeout"):
        rule_from_mapping(
            {"name": "x", "action": "review", "approvers": ["dba"], "timeout": timeout}, file="f", key="rules.x"
        )
    assert (
        rule_from_mapping(
            {"name": "x", "action": "review", "approvers": ["dba"], "timeout": "24h"}, file="f", key="r"
        ).timeout
        == 86400
    )


def test_token_lifetime_is_bounded_and_legacy_rows_fail_closed(store_target: Path | Secret, tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 'max_token_ttl = "1d"'))
    store = open_store(store_target)
    tokens = TokenService(store, cfg)
    for ttl in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(HoopError, match="token lifetime"):
            tokens.issue("alice", ttl)
    with pytest.raises(HoopError, match=r"longer than the maximum of 1d \(\[gateway\] max_token_ttl\)"):
        tokens.issue("alice", 2 * 86400)
    issued = tokens.issue("alice", 3600)
    assert tokens.authenticate("alice", issued.token).name == "alice"
    store.execute("UPDATE tokens SET expires = ? WHERE id = ?", (float("inf"), issued.id))
    with pytest.raises(HoopError, match="no valid expiry"):
        tokens.authenticate("alice", issued.token)
    store.execute("UPDATE tokens SET expires = ? WHERE id = ?", (time.time() + 1e12, issued.id))
    with pytest.raises(HoopError, match="no valid expiry"):
        tokens.authenticate("alice", issued.token)
    store.close()


def test_extend_moves_a_live_token_and_never_revives_one(store_target: Path | Secret, tmp_path: Path) -> None:
    store = open_store(store_target)
    tokens = TokenService(store, load_config(config(tmp_path)))
    issued = tokens.issue("alice", 60)
    expires = tokens.extend(issued.id, 300)
    assert 299 < expires - time.time() <= 300
    tokens.revoke(issued.id)
    with pytest.raises(HoopError, match="no live token"):
        tokens.extend(issued.id, 300)
    old = tokens.issue("alice", 60)
    store.execute("UPDATE tokens SET expires = ? WHERE id = ?", (time.time() - 1, old.id))
    with pytest.raises(HoopError, match="no live token"):
        tokens.extend(old.id, 300)
    store.close()


@pytest.mark.parametrize("grant", [float("inf"), float("nan"), "inf", "1800", True, 0, -60, 8 * 3600 + 1])
async def test_a_grant_out_of_bounds_decides_nothing(
    store_target: Path | Secret, tmp_path: Path, grant: object
) -> None:
    gate = Gate(open_store(store_target))
    held = await gate.hold(HELD)
    with pytest.raises(HoopError, match="grant"):
        gate.approvals.decide(held.id, BOB, True, "", grant)
    assert not held.task.done() and gate.row(held.id)["status"] == "pending"  # the refusal approved nothing
    assert gate.grants() == []
    gate.approvals.decide(held.id, BOB, True, "", 8 * 3600)
    assert (await settled(held.task)).approved
    [row] = gate.store.query("SELECT expires - created AS span FROM grants")
    assert row["span"] == pytest.approx(8 * 3600)


def test_a_stored_rule_with_an_endless_timeout_stays_in_force(store_target: Path | Secret, tmp_path: Path) -> None:
    from hoop.core.guardrails import MAX_HOLD
    from hoop.core.rulebook import RuleBook

    store = open_store(store_target)
    body = {"name": "legacy-hold", "action": "review", "statements": ["update"], "approvers": ["dba"]}
    RuleBook(store)._write("guard", "legacy-hold", {**body, "timeout": float("inf")}, "cli:old", deleted=False)
    guards, _ = RuleBook(store).current()
    [rule] = [g for g in guards if g.name == "legacy-hold"]
    assert rule.action == "review" and rule.timeout == MAX_HOLD
    store.close()


async def test_a_stored_endless_grant_lets_nothing_through(store_target: Path | Secret, tmp_path: Path) -> None:
    gate = Gate(open_store(store_target))
    held = await gate.hold(HELD)
    gate.approvals.decide(held.id, BOB, True, "", 600)
    assert (await settled(held.task)).approved
    again = await gate.hold(HELD)
    assert again.id == 0 and (await settled(again.task)).approved  # the grant let it through
    gate.store.execute("UPDATE grants SET expires = ?", (float("inf"),))
    later = await gate.hold(HELD)
    assert later.id != 0 and not later.task.done()  # held again: the endless grant is not honoured
    gate.approvals.decide(later.id, BOB, False, "no")
    await settled(later.task)
