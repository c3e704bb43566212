"""Dry-run a draft rule over recorded history: what would it have blocked, held or masked?

Guardrails are replayed over the `statements` table (each with the session's user, groups
and connection); masking rules over the result samples in recordings, which hold the
columns' origins. Nothing is changed; the report is for a person deciding to enable it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hoop.core import recording
from hoop.core.guardrails import Context, GuardRule, RuleSet
from hoop.core.lineage import LineageUnknown, by_position, catalog_from_statement, lineage
from hoop.core.masking import ColumnRef, MaskPolicy, MaskRule
from hoop.core.sql import classify, classify_shell
from hoop.core.store.base import Store

DIALECTS = {"postgres": "postgres", "mysql": "mysql", "ssh": "shell"}
MAX_HITS = 200


def _groups(store: Store, config: Any, user: str) -> frozenset[str]:
    entry = config.user(user)
    if entry is not None:
        return frozenset(entry.groups)
    return frozenset(store.user_groups(user) or ())


def test_guard_rule(store: Store, config: Any, rule: GuardRule, *, limit: int = 10_000) -> dict[str, Any]:
    rows = store.query(
        "SELECT s.session_id, s.text, x.user, x.connection, x.protocol FROM statements s "
        "JOIN sessions x ON x.id = s.session_id ORDER BY s.id DESC LIMIT ?",
        (limit,),
    )
    ruleset = RuleSet([rule])
    counts: Counter[str] = Counter()
    hits: list[dict[str, Any]] = []
    for row in rows:
        dialect = DIALECTS.get(row["protocol"])
        if dialect is None or not row["text"]:
            continue
        classification = classify_shell(row["text"]) if dialect == "shell" else classify(row["text"], dialect)  # type: ignore[arg-type]
        verdict = ruleset.evaluate(
            classification, Context(row["connection"], row["user"], _groups(store, config, row["user"]))
        )
        if verdict.action == "allow":
            continue
        outcome = "block" if verdict.action == "block" else "hold"
        counts["blocked" if outcome == "block" else "held"] += 1
        if len(hits) < MAX_HITS:
            hits.append(
                {
                    "session": row["session_id"],
                    "user": row["user"],
                    "connection": row["connection"],
                    "outcome": outcome,
                    "text": row["text"],
                    "reason": verdict.reason,
                }
            )
    return {"examined": len(rows), "unit": "statements", "counts": dict(counts), "hits": hits}


def recorded_ref(name: str) -> ColumnRef | None:
    """A recorded column name `schema.table.column` as a reference (None for a bare name)."""
    parts = name.split(".")
    return ColumnRef(*parts) if len(parts) == 3 else None


def derived_from_statement(
    text: str, dialect: str, refs: Sequence[ColumnRef | None]
) -> list[frozenset[ColumnRef] | None] | None:
    """What the draft's column patterns would reach through expressions (hoop/core/lineage.py),
    from the statement alone: recorded columns without an origin get the sources their
    expression names. Where that cannot be worked out offline, nothing is assumed."""
    if all(r is not None for r in refs) or not text:
        return None
    try:
        outputs = lineage(text, dialect, catalog_from_statement(text, dialect))
    except LineageUnknown:
        return None
    derived = by_position(outputs, len(refs))
    return [frozenset() if r is not None or d is None else d for r, d in zip(refs, derived)]


def test_mask_rule(store: Store, config: Any, rule: MaskRule, *, limit: int = 10_000) -> dict[str, Any]:
    sessions = store.query(
        "SELECT id, user, connection, protocol, recording FROM sessions WHERE protocol IN ('postgres', 'mysql') "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    counts: Counter[str] = Counter()
    hits: list[dict[str, Any]] = []
    examined = 0
    for s in sessions:
        path = Path(s["recording"]) if s["recording"] else None
        if path is None or not path.exists():
            continue
        policy = MaskPolicy.build([rule], connection=s["connection"], groups=_groups(store, config, s["user"]))
        text = ""
        dialect = "postgres" if s["protocol"] == "postgres" else "mysql"
        for _, kind, data in recording.iter_frames(path):
            if kind == "q":
                text = data.get("text", "")
            if kind != "r" or not data.get("sample"):
                continue
            columns = data.get("columns") or []
            for row in data["sample"]:
                examined += 1
                refs = [recorded_ref(c) for c in columns] if len(columns) == len(row) else [None] * len(row)
                plan = policy.plan(refs, derived=derived_from_statement(text, dialect, refs))
                values = [None if v is None else str(v).encode() for v in row]
                out = plan.apply(values) if plan is not None else None
                if out is None:
                    continue
                counts["masked"] += 1
                if len(hits) < MAX_HITS:
                    changed = [c for c, a, b in zip(columns or [""] * len(row), values, out) if a != b]
                    hits.append(
                        {
                            "session": s["id"],
                            "user": s["user"],
                            "connection": s["connection"],
                            "outcome": "mask",
                            "text": f"{text} -> {', '.join(changed) or 'values'}",
                        }
                    )
    return {"examined": examined, "unit": "result rows", "counts": dict(counts), "hits": hits}
