"""The `hoop` command: serve | tui | replay | token | sessions | approvals | audit | rules | users | ...; `--version`.

`-c FILE` is accepted before or after the subcommand. Commands print what a person needs on
stdout and problems on stderr; a token is only ever printed by `hoop token issue`, alone on
its last line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pwd
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hoop.commands.filters import add_filters
from hoop.commands.help_text import describe
from hoop.core.config import DEFAULT_CONFIG, Config, load_config
from hoop.core.errors import ConfigError, HoopError
from hoop.core.visible import inert_log_handler, visible
from hoop.pipes import reader_gone

if TYPE_CHECKING:
    from hoop.core.store.base import Store

Handler = Callable[[argparse.Namespace, Config], int]


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    except (OverflowError, ValueError, OSError):  # inf, NaN or centuries away: no calendar date
        return "invalid"


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[visible(str(r.get(c, ""))) for c in columns] for r in rows]  # names and notes are typed by people
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _store(config: Config) -> Store:
    from hoop.core.store.base import open_store  # here, not at the top: keeps `hoop --help` light

    return open_store(config.gateway.store_target)


# -- commands -------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    from hoop.core.upstream_trust import unverified_warnings
    from hoop.server.ssh.shell_policy import allowed_shell_warnings

    for warning in [*unverified_warnings(config), *allowed_shell_warnings(config)]:
        print(f"{config.path}: warning: {warning}", file=sys.stderr)
    print(
        f"{config.path}: ok ({len(config.users)} users, {len(config.connections)} connections, "
        f"{len(config.rules)} rules, {len(config.masking)} masking rules)"
    )
    if any(m.enabled and m.detectors for m in config.masking):
        from hoop.core.detect_engine import engine_name

        print(f"{config.path}: content detectors: {engine_name()} engine")
    return 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from hoop.server.gateway import run

    return run(config)


def cmd_token(args: argparse.Namespace, config: Config) -> int:
    from hoop.core import audit
    from hoop.core.identity import TokenService, parse_ttl, valid_expiry

    store = _store(config)
    tokens = TokenService(store, config)
    # Tokens are managed locally: who can write data_dir holds the store and the keys anyway,
    # so that access is the root of trust (how the first admin gets a token). Each use is
    # audited with the OS account that made it.
    actor = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    if args.token_cmd == "issue":
        try:
            ttl = parse_ttl(args.ttl, config.gateway.max_token_ttl, "[gateway] max_token_ttl")
        except ValueError as exc:
            raise HoopError(f"--ttl: {exc}") from None
        issued = tokens.issue(args.user, ttl, args.note or "")
        audit.record(store, actor, "token.issue", args.user, token_id=issued.id, expires=issued.expires, via="data-dir")
        print(f"token {issued.id} for {visible(args.user)}, expires {_fmt_time(issued.expires)}", file=sys.stderr)
        print(issued.token)
    elif args.token_cmd == "revoke":
        row = tokens.revoke(args.id)
        audit.record(store, actor, "token.revoke", str(row["user"]), token_id=args.id, via="data-dir")
        print(visible(f"revoked token {args.id} of {row['user']}"))
    else:
        audit.record(store, actor, "token.list", "", via="data-dir")
        now = time.time()
        rows = []
        for r in tokens.list():
            # A row from before lifetimes were bounded (expires = inf) is refused at login.
            valid = valid_expiry(r["created"], r["expires"])
            expires = _fmt_time(r["expires"]) if valid else "never (invalid)"
            state = "active" if valid and r["expires"] > now else ("expired" if valid else "invalid")
            state = "revoked" if r["revoked"] else state
            rows.append({**r, "state": state, "created": _fmt_time(r["created"]), "expires": expires})
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            _print_table(rows, ["id", "user", "state", "created", "expires", "note"])
    return 0


def cmd_sessions(args: argparse.Namespace, config: Config) -> int:
    from hoop.commands.filters import where_of

    store = _store(config)
    where = where_of(args, time="started", user="user", connection="connection")
    rows = store.query(f"SELECT * FROM sessions{where.sql()} ORDER BY id DESC LIMIT ?", (*where.params, args.limit))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from hoop.core.store.records import connection_label

    for r in rows:
        r["connection"] = connection_label(r["connection"])
        r["duration"] = f"{(r['ended'] or time.time()) - r['started']:.1f}s"
        r["started"] = _fmt_time(r["started"])
    columns = ["id", "user", "connection", "protocol", "client_addr", "started", "duration", "status"]
    _print_table(rows, columns + ["statements", "blocked", "held"])
    return 0


def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    from hoop.core.replay import replay_session

    store = _store(config)
    return replay_session(store, config, args.session_id, speed=args.speed, start=args.start, as_text=args.text)


def cmd_audit(args: argparse.Namespace, config: Config) -> int:
    from hoop.core import audit

    store = _store(config)
    if args.audit_cmd == "verify":
        return _audit_verify(args, config, store)
    if args.audit_cmd == "head":
        return _audit_head(args, config, store)
    if args.audit_cmd == "key":
        return _audit_key(config)
    from hoop.commands.filters import shorten, where_of

    where = where_of(
        args,
        time="ts",
        user="actor",
        connection=audit.event_connection(store.dialect),
        decision=audit.event_decision(store.dialect),
    )
    rows = audit.events(store, limit=args.limit, action=args.action, where=where.condition(), params=where.params)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        # One line per event: every value shown inert (a newline as \n) and long ones cut.
        detail = " ".join(
            f"{visible(k)}={shorten(visible(_detail_text(v)), DETAIL_WIDTH)}" for k, v in sorted(r["detail"].items())
        )
        actor, action, target = (visible(str(r[k])) for k in ("actor", "action", "target"))  # names whole
        print(f"{r['id']:>6}  {_fmt_time(r['ts'])}  {actor:<14} {action:<22} {target:<12} {detail}")
    return 0


DETAIL_WIDTH = 80  # characters of one detail value (a statement) in a line; --json has all of it


def _detail_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _audit_verify(args: argparse.Namespace, config: Config, store: Store) -> int:
    from hoop.core import audit, audit_anchor, audit_check

    try:
        expected = audit.Head.parse(args.expect) if args.expect else None
    except ValueError as exc:
        raise HoopError(f"--expect: {exc}") from None
    gw = config.gateway
    report = audit_check.verify(
        store,
        args.checkpoints or gw.checkpoint_file,
        gw.checkpoint_key,
        pinned_key=audit_anchor.parse_public(args.key) if args.key else None,
        expected=expected,
        recordings=args.recordings,
        recordings_dir=gw.recordings_dir,
    )
    for line in report.passed:
        print(line)
    for line in report.warnings + report.problems:
        print(line, file=sys.stderr)
    print(
        "audit trail verified" if report.ok else "audit trail NOT verified",
        file=sys.stdout if report.ok else sys.stderr,
    )
    return 0 if report.ok else 1


def _audit_head(args: argparse.Namespace, config: Config, store: Store) -> int:
    """First line `COUNT:HASH`, for scripts and for `verify --expect`."""
    from hoop.core import audit

    head = audit.head(store)
    row = audit.event(store, head.count)
    if args.json:
        print(json.dumps({"count": head.count, "head": head.hash, "ts": row["ts"] if row else None}))
        return 0
    print(head)
    if row is not None:
        print(
            f"event {row['id']}: {row['action']} at {_fmt_time(row['ts'])} (as stored; `hoop audit verify` checks it)"
        )
    return 0


def _audit_key(config: Config) -> int:
    from hoop.core import audit_anchor

    public = audit_anchor.load_key(config.gateway.checkpoint_key).public_key()
    print(audit_anchor.public_text(public))
    print(f"key id {audit_anchor.key_id(public)} ({config.gateway.checkpoint_key}); pin it with `verify --key`")
    return 0


COMMANDS: dict[str, Handler] = {
    "check": cmd_check,
    "serve": cmd_serve,
    "token": cmd_token,
    "sessions": cmd_sessions,
    "replay": cmd_replay,
    "audit": cmd_audit,
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hoop")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help=f"config file (default ./{DEFAULT_CONFIG})")
    parser = argparse.ArgumentParser(
        prog="hoop",
        description="Hoop access gateway: serve it, and list, decide and verify what passes through it.",
        epilog="example: hoop serve -c /etc/hoop/hoop.toml; `hoop COMMAND --help` describes each command",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"hoop {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("check", parents=[common], help="validate the config file")
    sub.add_parser("serve", parents=[common], help="run the gateway")

    token = sub.add_parser("token", parents=[common], help="issue, list and revoke local tokens")
    tsub = token.add_subparsers(dest="token_cmd", required=True)
    issue = tsub.add_parser("issue", parents=[common], help="print a new token for USER")
    issue.add_argument("user")
    issue.add_argument("--ttl", default="8h", help="lifetime, e.g. 30m, 8h, 7d (default 8h)")
    issue.add_argument("--note", default="")
    tlist = tsub.add_parser("list", parents=[common])
    tlist.add_argument("--json", action="store_true")
    revoke = tsub.add_parser("revoke", parents=[common])
    revoke.add_argument("id")

    sessions = sub.add_parser("sessions", parents=[common], help="list recent sessions")
    sessions.add_argument("--json", action="store_true")
    sessions.add_argument("--limit", type=int, default=50)
    add_filters(sessions)

    replay = sub.add_parser("replay", parents=[common], help="replay a recorded session")
    replay.add_argument("session_id", type=int)
    replay.add_argument("--speed", type=float, default=0.0, help="play with timing at this speed (0: print at once)")
    replay.add_argument("--from", dest="start", type=float, default=0.0, help="start at this many seconds")
    replay.add_argument("--text", action="store_true", help="print as plain text")

    aud = sub.add_parser("audit", parents=[common], help="list, verify or anchor the audit trail")
    aud.add_argument(
        "audit_cmd",
        nargs="?",
        choices=["list", "verify", "head", "key"],
        default="list",
        help="list events; verify the chain, checkpoints and recordings; print the head COUNT:HASH; "
        "print the checkpoint public key",
    )
    aud.add_argument("--json", action="store_true")
    aud.add_argument("--limit", type=int, default=200)
    aud.add_argument("--action", default=None)
    add_filters(
        aud, decision="only statements with this decision: allow, block, review (any outcome), review:approved, ..."
    )
    aud.add_argument("--expect", metavar="COUNT:HASH", help="verify: the chain must hold this head (kept by you)")
    aud.add_argument("--key", metavar="ed25519:BASE64", help="verify: check checkpoints with this public key")
    aud.add_argument("--checkpoints", type=Path, metavar="FILE", help="verify: this checkpoint file instead")
    aud.add_argument("--recordings", action="store_true", help="verify: re-hash every sealed recording file")

    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        COMMANDS.update(module.register(sub, common))
    describe(parser)
    return parser


# Each module adds subcommands: `register(subparsers, common) -> {command name: handler}`.
COMMAND_MODULES = [
    "hoop.commands.approvals",
    "hoop.commands.rules",
    "hoop.commands.login",
    "hoop.commands.tui",
    "hoop.commands.health",
    "hoop.commands.whoami",
    "hoop.commands.reload",
    "hoop.commands.inventory",
    "hoop.commands.migrate",
]


RESOLVES_SECRETS = ("serve", "check")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config_path = Path(getattr(args, "config", DEFAULT_CONFIG))
    # Warnings logged by a command (a stored rule it skips, say) quote text typed by people.
    logging.basicConfig(level=logging.WARNING, handlers=[inert_log_handler(sys.stderr, "hoop: %(message)s")])
    try:
        # Only the gateway and `check` read the secrets the config names; every other command
        # works without them (the SSH-hosted console runs with none in its environment).
        config = load_config(config_path, resolve_secrets=args.command in RESOLVES_SECRETS)
        status = COMMANDS[args.command](args, config)
        sys.stdout.flush()  # here, so that a reader gone away is seen below, not at exit
        return status
    except BrokenPipeError:
        if not reader_gone(sys.stdout):
            raise  # a socket, not our output: a real failure
        # The reader stopped (`hoop audit | head -1`): end quietly as other Unix tools do.
        # Python would try to flush stdout again at exit and print an error; point it at null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConfigError as exc:
        print(f"hoop: config error: {visible(str(exc))}", file=sys.stderr)
        return 2
    except HoopError as exc:  # the gateway's refusals quote names and reasons typed by people
        print(f"hoop: {visible(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
