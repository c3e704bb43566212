"""`hoop rules list|show|add|edit|enable|disable|remove|test`.

Rules are versioned rows in the store (see `hoop.core.rulebook`); the running gateway applies
a change within a second. A rule is given as TOML (a file or stdin) holding the keys of one
`[[rules]]` (kind `guard`) or `[[masking]]` (kind `mask`) table. `hoop rules test` runs a draft
over the recorded history and reports what it would have blocked, held or masked.

`list`, `show` and `test` read the store. Every change (add, edit, enable, disable, remove)
goes to the running gateway's control endpoint with the caller's token (--token, HOOP_TOKEN or
`hoop login`), which checks that the caller is an admin, writes it and audits it: the same
path, checks and audit action names (`rule.save`, ...) as the TUI's rule editor.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from typing import Any

from hoop.control_client import ControlClient, caller_client
from hoop.core.config import Config
from hoop.core.errors import HoopError
from hoop.core.rulebook import RuleBook, parse_rule
from hoop.core.rules_test import test_guard_rule, test_mask_rule
from hoop.core.store.base import Store, open_store
from hoop.core.visible import visible

KINDS = ("guard", "mask")


def _read_body(path: str | None, kind: str) -> dict[str, Any]:
    if path in (None, "-"):
        if sys.stdin.isatty():  # a person at a terminal: say what is awaited and how to end it
            table = "[[rules]]" if kind == "guard" else "[[masking]]"
            print(f"hoop: type the {kind} rule as TOML (the keys of one {table} table), then Ctrl-D:", file=sys.stderr)
        text = sys.stdin.read()
    else:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115
    try:
        body = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HoopError(f"rule is not valid TOML: {exc}") from None
    for wrapper in ("rules", "masking"):  # accept a pasted [[rules]] / [[masking]] table too
        if list(body) == [wrapper] and isinstance(body[wrapper], list) and len(body[wrapper]) == 1:
            return dict(body[wrapper][0])
    return body


NAMED = ("show", "enable", "disable", "remove")  # take [KIND] NAME


def _kind_and_name(book: RuleBook, words: list[str]) -> tuple[str, str]:
    """`KIND NAME`, or `NAME` alone when exactly one kind has a rule of that name."""
    if len(words) == 2:
        if words[0] not in KINDS:
            raise HoopError(f"expected KIND NAME with KIND one of {', '.join(KINDS)}, got {words[0]!r}")
        return words[0], words[1]
    if len(words) != 1:
        raise HoopError("expected [KIND] NAME")
    name = words[0]
    kinds = [kind for kind in KINDS if book.history(kind, name)]
    if not kinds:
        raise HoopError(f"no rule named {name!r}")
    if len(kinds) > 1:
        raise HoopError(f"both a guard and a mask rule are named {name!r}: say which (guard {name} or mask {name})")
    return kinds[0], name


def _gateway(args: argparse.Namespace, config: Config) -> ControlClient:
    return caller_client(config.gateway.control_path, args.token, config.oidc)


def cmd_rules(args: argparse.Namespace, config: Config) -> int:
    store = open_store(config.gateway.store_target)
    book = RuleBook(store)
    action = args.rules_cmd
    if action in NAMED:
        args.kind, args.name = _kind_and_name(book, args.words)
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
        gateway = _gateway(args, config)  # before reading stdin: without a token nothing is asked
        body = _read_body(args.file, args.kind)
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
        rule = parse_rule(args.kind, body)  # a clear local error before asking the gateway
        result = gateway.call("rules.save", kind=args.kind, body=body)
        print(
            visible(f"saved {args.kind} rule {rule.name} v{result['version']}; the gateway applies it within a second")
        )
        return 0
    if action in ("enable", "disable"):
        reason = (getattr(args, "reason", None) or "").strip()
        result = _gateway(args, config).call(f"rules.{action}", kind=args.kind, name=args.name, reason=reason)
        print(visible(f"{action}d {args.kind} rule {args.name} (v{result['version']})"))
        return 0
    if action == "remove":
        result = _gateway(args, config).call("rules.remove", kind=args.kind, name=args.name)
        print(visible(f"removed {args.kind} rule {args.name} (v{result['version']})"))
        return 0
    return _test(store, config, args)


def _test(store: Store, config: Config, args: argparse.Namespace) -> int:
    body = _read_body(args.file, args.kind)
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
    ident = argparse.ArgumentParser(add_help=False)
    ident.add_argument("--token", default=None, help="an admin's token (default: $HOOP_TOKEN, then `hoop login`)")
    for name in NAMED:
        q = rsub.add_parser(name, parents=[common] if name == "show" else [common, ident])
        q.add_argument(
            "words",
            nargs="+",
            metavar="[KIND] NAME",
            help="the kind (guard or mask) may be left out when only one has the name",
        )
        if name == "disable":
            q.add_argument("--reason", default="", help="why (required for built-in rules; audited)")
    add = rsub.add_parser("add", parents=[common, ident], help="add a rule from TOML (file or stdin)")
    add.add_argument("kind", choices=["guard", "mask"])
    add.add_argument("file", nargs="?", default=None)
    edit = rsub.add_parser("edit", parents=[common, ident], help="store a new version of a rule")
    edit.add_argument("kind", choices=["guard", "mask"])
    edit.add_argument("name")
    edit.add_argument("file", nargs="?", default=None)
    test = rsub.add_parser("test", parents=[common], help="run a draft rule over the recorded history")
    test.add_argument("kind", choices=["guard", "mask"])
    test.add_argument("file", nargs="?", default=None)
    test.add_argument("--limit", type=int, default=10_000, help="most recent statements to examine")
    test.add_argument("--json", action="store_true")
    return {"rules": cmd_rules}
