"""`hoop migrate --to TARGET [--from SOURCE] [--replace]`: copy a whole store into another.

SOURCE and TARGET are a SQLite file's path or a `postgresql://` DSN; a DSN's password comes
through `${VAR}` or `file:` like every other secret, and no message shows it. The source
defaults to this configuration's store. Recordings go with the store: a SQLite store's files
(its recordings_dir) become a PostgreSQL store's chunks, and back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hoop.core.config import Config
from hoop.core.errors import HoopError
from hoop.core.secrets import Secret, resolve_secret

if TYPE_CHECKING:
    from hoop.core.store.base import Store


def _target(text: str) -> Path | Secret:
    from hoop.core.store.base import is_postgres_dsn

    if is_postgres_dsn(text):
        try:
            return resolve_secret(text)
        except ValueError as exc:
            raise HoopError(f"--to/--from: {exc}") from None
    return Path(text)


def _same(a: Path | Secret, b: Path | Secret) -> bool:
    if isinstance(a, Path) and isinstance(b, Path):
        return a.resolve() == b.resolve()
    return isinstance(a, Secret) and isinstance(b, Secret) and a.reveal() == b.reveal()


def _open(target: Path | Secret, option: str) -> Store:
    from hoop.core.store.base import StoreUnavailable, open_store

    try:
        return open_store(target)
    except StoreUnavailable as exc:  # names host, port and database, never a password
        raise HoopError(f"{option}: {exc}") from None


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    from hoop.core.store.migrate import Side, copy, empty, is_empty

    gw = config.gateway
    source_target = _target(args.source) if args.source else gw.store_target
    target_target = _target(args.to)
    if _same(source_target, target_target):
        raise HoopError("--to names the source store itself")
    source = Side(_open(source_target, "--from"))
    try:
        target = Side(_open(target_target, "--to"))
    except HoopError:
        source.store.close()
        raise
    try:
        # Recordings kept as files: the configuration's recordings_dir for its own store, or
        # the directory given; a SQLite store made from a shared one gets `recordings` beside it.
        if not source.store.shared:
            source.recordings_dir = args.from_recordings or (gw.recordings_dir if not args.source else None)
            if source.recordings_dir is None:
                raise HoopError("--from names a SQLite store: give its recordings directory with --from-recordings")
        if not target.store.shared:
            target.recordings_dir = args.to_recordings or Path(args.to).parent / "recordings"
        held = is_empty(target)
        if held and not args.replace:
            raise HoopError(
                f"the target {target.store.describe()} is not empty ({', '.join(held)}): "
                "nothing was copied (--replace empties it first)"
            )
        if held:
            empty(target)
        print(f"copying {source.store.describe()} -> {target.store.describe()}", file=sys.stderr)
        result = copy(source, target, progress=lambda line: print(f"  {line}", file=sys.stderr))
    finally:
        source.store.close()
        target.store.close()
    for name, count in result.tables.items():
        print(f"{name}: {count}")
    print(f"recordings: {result.recordings} files, {result.recording_bytes} bytes")
    if result.chain is not None and result.chain.ok:
        print(f"audit chain verified on the target: {result.chain.head.count} events, head {result.chain.head.hash}")
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("migrated" if result.ok else "migration NOT complete", file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser(
        "migrate",
        parents=[common],
        help="copy every table, the audit chain and the recordings into another store",
    )
    p.add_argument("--to", required=True, metavar="STORE", help="a SQLite file or a postgresql:// DSN (${VAR} allowed)")
    p.add_argument("--from", dest="source", metavar="STORE", help="the store to copy (default: this config's store)")
    p.add_argument("--from-recordings", type=Path, metavar="DIR", help="recordings directory of a SQLite --from")
    p.add_argument(
        "--to-recordings", type=Path, metavar="DIR", help="recordings directory of a SQLite --to (default: beside it)"
    )
    p.add_argument("--replace", action="store_true", help="empty a target that holds rows or recordings first")
    return {"migrate": cmd_migrate}
