"""`hoop rules list|show|add|edit|enable|disable|remove|test`.

Rules are versioned rows in the store (see `hoop.core.rulebook`); the running gateway applies
a change within a second. A rule is given as TOML (a file or stdin) holding the keys of one
`[[rules]]` (kind `guard`) or `[[masking]]` (kind `mask`) table. `hoop rules test` runs a draft
over the recorded history and reports what it would have blocked, held or masked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from typing import Any

from hoop.core import audit
from hoop.core.config import Config
from hoop.core.errors import HoopError
from hoop.core.rulebook import RuleBook, parse_rule, rule_body
from hoop.core.rules_test import test_guard_rule, test_mask_rule
from hoop.core.store.sqlite import Store
from hoop.core.visible import visible


def _author() -> str:
    return f"cli:{os.environ.get('USER') or 'operator'}"


def _read_body(path: str | None) -> dict[str, Any]:
    text = sys.stdin.read() if path in (None, "-") else open(path, encoding="utf-8").read()  # noqa: SIM115
    try:
        body = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HoopError(f"rule is not valid TOML: {exc}") from None
    for wrapper in ("rules", "masking"):  # accept a pasted [[rules]] / [[masking]] table too
        if list(body) == [wrapper] and isinstance(body[wrapper], list) and len(body[wrapper]) == 1:
            return dict(body[wrapper][0])
    return body


def cmd_rules(args: argparse.Namespace, config: Config) -> int:
    store = Store(config.gateway.db_path)
    book = RuleBook(store)
    action = args.rules_cmd
    if action == "list":
        rows = [r for r in book.latest_rows() if args.kind in (None, r["kind"])]
        if args.json:
            print(json.dumps([{**r, "body": json.loads(r["body"])} for r in rows], indent=2))
            return 0
        for r in rows:
            body = json.loads(r["body"])
            state = "on " if body.get("enabled", True) else "off"
            what = body.get("action", body.get("style", ""))
            print(visible(f"{r['kind']:<5} {state} {r['name']:<28} v{r['version']:<3} {what:<8} by {r['author']}"))
        return 0
    if action == "show":
        history = book.history(args.kind, args.name)
        if not history:
            raise HoopError(f"no {args.kind} rule named {args.name!r}")
        for r in history:
            flag = " (removed)" if r["deleted"] else ""
            print(visible(f"v{r['version']} by {r['author']}{flag}: {r['body']}"))
        return 0
    if action in ("add", "edit"):
        body = _read_body(args.file)
        if action == "edit":
            body.setdefault("name", args.name)
            if body["name"] != args.name:
                raise HoopError(f"the rule's name {body['name']!r} differs from {args.name!r}")
            if not book.history(args.kind, args.name):
                raise HoopError(f"no {args.kind} rule named {args.name!r} (use add)")
        elif (
            book.history(args.kind, str(body.get("name", "")))
            and not book.history(args.kind, str(body.get("name")))[-1]["deleted"]
        ):
            raise HoopError(f"a {args.kind} rule named {body.get('name')!r} exists (use edit)")
        return _save(store, book, args.kind, body)
    if action in ("enable", "disable"):
        latest = [r for r in book.latest_rows() if r["kind"] == args.kind and r["name"] == args.name]
        if not latest:
            raise HoopError(f"no {args.kind} rule named {args.name!r}")
        body = json.loads(latest[0]["body"])
        body["enabled"] = action == "enable"
        return _save(store, book, args.kind, body)
    if action == "remove":
        version = book.remove(args.kind, args.name, _author())
        audit.record(store, _author(), "rules.remove", args.name, kind=args.kind, version=version)
        print(visible(f"removed {args.kind} rule {args.name} (v{version})"))
        return 0
    return _test(store, config, args)


def _save(store: Store, book: RuleBook, kind: str, body: dict[str, Any]) -> int:
    version = book.save(kind, body, _author())
    rule = parse_rule(kind, body)
    audit.record(store, _author(), "rules.save", rule.name, kind=kind, version=version, body=rule_body(kind, rule))
    print(visible(f"saved {kind} rule {rule.name} v{version}; a running gateway applies it within a second"))
    return 0


def _test(store: Store, config: Config, args: argparse.Namespace) -> int:
    body = _read_body(args.file)
    rule = parse_rule(args.kind, body)
    if args.kind == "guard":
        report = test_guard_rule(store, config, rule, limit=args.limit)
    else:
        report = test_mask_rule(store, config, rule, limit=args.limit)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    for hit in report["hits"]:
        print(
            visible(f"session {hit['session']:<6} {hit['user']:<10} {hit['connection']:<10} {hit['outcome']:<7} ")
            + visible(hit["text"])[:90]
        )
    counts = ", ".join(f"{n} {k}" for k, n in sorted(report["counts"].items())) or "nothing"
    print(visible(f"rule {rule.name} over {report['examined']} recorded {report['unit']}: would have {counts}"))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser("rules", parents=[common], help="list, change and test guardrail and masking rules")
    rsub = p.add_subparsers(dest="rules_cmd", required=True)
    ls = rsub.add_parser("list", parents=[common])
    ls.add_argument("--kind", choices=["guard", "mask"], default=None)
    ls.add_argument("--json", action="store_true")
    for name in ("show", "enable", "disable", "remove"):
        q = rsub.add_parser(name, parents=[common])
        q.add_argument("kind", choices=["guard", "mask"])
        q.add_argument("name")
    add = rsub.add_parser("add", parents=[common], help="add a rule from TOML (file or stdin)")
    add.add_argument("kind", choices=["guard", "mask"])
    add.add_argument("file", nargs="?", default=None)
    edit = rsub.add_parser("edit", parents=[common], help="store a new version of a rule")
    edit.add_argument("kind", choices=["guard", "mask"])
    edit.add_argument("name")
    edit.add_argument("file", nargs="?", default=None)
    test = rsub.add_parser("test", parents=[common], help="run a draft rule over the recorded history")
    test.add_argument("kind", choices=["guard", "mask"])
    test.add_argument("file", nargs="?", default=None)
    test.add_argument("--limit", type=int, default=10_000, help="most recent statements to examine")
    test.add_argument("--json", action="store_true")
    return {"rules": cmd_rules}
