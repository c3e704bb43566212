"""The pipeline's way with big statements: classified in worker processes (real ones), within
the size and time budgets of `[gateway]`, decided as the same text would be inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoop.core.bigtext import INLINE_SIZE, ParseLimits
from hoop.core.config import load_config
from hoop.core.errors import ConfigError
from hoop.core.guardrails import GuardRule
from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql.textmode import UTF8

PG = Subject("alice", frozenset({"dev"}), "pg", "postgres")
MY = Subject("alice", frozenset({"dev"}), "my", "mysql")
RULES = [GuardRule("no-drop", "block", statements=("drop",))]


def in_list(size: int) -> str:
    return "SELECT 'x' IN (" + ",".join(f"'v{i:07d}'" for i in range(size // 11)) + ")"


@pytest.mark.parametrize("subject", [PG, MY], ids=["postgres", "mysql"])
async def test_a_big_text_is_decided_in_a_worker_as_it_would_be_inline(subject: Subject) -> None:
    pipeline = Pipeline(RULES)
    try:
        allowed, refused = in_list(60_000), in_list(60_000) + "; DROP TABLE keep"
        assert pipeline.deferred(subject, allowed) and pipeline.deferred(subject, refused)
        decisions = [await pipeline.judge(subject, allowed), await pipeline.judge(subject, refused)]
        assert [d.action for d in decisions] == ["allow", "block"]
        assert decisions[1].rule == "no-drop"
        assert pipeline.big._pool is not None and pipeline.big._pool._all  # it did go to a worker
        # The classification crossed the process boundary intact: the same facts as inline.
        inline = Pipeline(RULES, limits=ParseLimits(parse_workers=1))
        for text, decision in zip((allowed, refused), decisions):
            here = inline.big.classify_here(text, subject.dialect, UTF8)
            assert decision.classification == here
        # Judged once: later checks of the same texts are lookups, even after a rule change.
        assert not pipeline.deferred(subject, refused)
        pipeline.set_rules([], [])
        assert pipeline.check(subject, refused).action == "allow"
    finally:
        pipeline.close()


async def test_over_size_is_refused_unparsed_naming_the_setting() -> None:
    pipeline = Pipeline(limits=ParseLimits(max_statement_size=50_000))
    text = in_list(60_000)
    assert not pipeline.deferred(PG, text)  # nothing to classify: refused as it is
    decision = await pipeline.judge(PG, text)
    assert decision.action == "block"
    assert "gateway.max_statement_size = 50000" in decision.reason
    assert pipeline.big._pool is None  # no worker was started for it
    # Small limits apply below the inline size too.
    small = Pipeline(limits=ParseLimits(max_statement_size=2_000))
    assert small.check(PG, in_list(3_000)).action == "block"
    assert small.check(PG, "SELECT 1").action == "allow"


async def test_over_time_is_refused_and_the_worker_replaced() -> None:
    pipeline = Pipeline(limits=ParseLimits(parse_timeout=0.3, parse_workers=1))
    try:
        slow = "SELECT 1;" * 200_000  # seconds of classification
        decision = await pipeline.judge(PG, slow)
        assert decision.action == "block" and "gateway.parse_timeout = 0.3 s" in decision.reason
        pool = pipeline.big._pool
        assert pool is not None and not pool._all  # the late worker was killed, not kept
        # The next big statement gets a fresh worker and is decided normally.
        assert (await pipeline.judge(PG, in_list(40_000))).action == "allow"
        # The refusal is kept: the same text again is not parsed again.
        assert not pipeline.deferred(PG, slow)
        assert pipeline.check(PG, slow).action == "block"
    finally:
        pipeline.close()


def test_small_statements_stay_inline() -> None:
    pipeline = Pipeline(RULES)
    assert not pipeline.deferred(PG, "x" * INLINE_SIZE)
    assert pipeline.check(PG, "DROP TABLE t").action == "block"
    assert pipeline.big._pool is None


def test_gateway_settings(tmp_path: Path) -> None:
    base = '[gateway]\n{}\n[listen]\npostgres = "127.0.0.1:15432"\n'
    path = tmp_path / "hoop.toml"
    path.write_text(base.format("max_statement_size = 100000\nparse_timeout = 0.5\nparse_workers = 3"))
    gw = load_config(path).gateway
    assert (gw.max_statement_size, gw.parse_timeout, gw.parse_workers) == (100_000, 0.5, 3)
    for line, key in (
        ("parse_timeout = -1", "gateway.parse_timeout"),
        ("parse_workers = 0", "gateway.parse_workers"),
        ("max_statement_size = 10", "gateway.max_statement_size"),
        ("parse_timout = 1", "gateway.parse_timout"),
    ):
        path.write_text(base.format(line))
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert str(err.value).startswith(f"{path}: {key}: ")
