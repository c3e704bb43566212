"""The lobby's read-only commands (`help`, `whoami`, `list`, `sessions`): each returns the text
the lobby shows."""

from __future__ import annotations

import asyncio
import time

from hoop.core.identity import Identity
from hoop.core.store.records import connection_label
from hoop.server.services import Services
from hoop.server.ssh.target import reachable

HELP = """\
Commands:
  help            this text
  whoami          your identity and groups
  list            connections you may use, with their type and whether they answer
  connect NAME    open a terminal (ssh) or an SQL shell (postgres, mysql) on NAME
  sessions        your recent sessions
  tui             the console (admins, auditors and approvers)
  exit            leave (also Ctrl-D)
Line editing: arrows, Home/End, Ctrl-A/E/U; Up/Down for history; Ctrl-C abandons a line.
Direct access: ssh -t USER+NAME@gateway (terminal or SQL shell) or
ssh USER+NAME@gateway 'command' (on a database, the command is SQL)."""


def whoami(ident: Identity, client: str) -> str:
    expires = time.strftime("%Y-%m-%d %H:%M", time.localtime(ident.expires)) if ident.expires else "-"
    return (
        f"user: {ident.name}\ngroups: {', '.join(sorted(ident.groups)) or '-'}\n"
        f"signed in with: {ident.source} (expires {expires})\nfrom: {client}"
    )


async def connections(services: Services, identity: Identity) -> str:
    conns = services.connections_for(identity)
    if not conns:
        return "no connections are available to you"
    up = await asyncio.gather(*(reachable(c.host, c.port, 1.0) for c in conns))
    width = max(len(c.name) for c in conns)
    lines = [f"{'NAME'.ljust(width)}  TYPE      STATUS"]
    lines += [
        f"{c.name.ljust(width)}  {c.type.ljust(8)}  {'reachable' if ok else 'unreachable'}" for c, ok in zip(conns, up)
    ]
    return "\n".join(lines)


async def recent_sessions(services: Services, user: str) -> str:
    rows = await asyncio.to_thread(
        services.store.query,
        "SELECT id, connection, protocol, started, status, statements FROM sessions "
        "WHERE user = ? ORDER BY id DESC LIMIT 15",
        (user,),
    )
    if not rows:
        return "no sessions yet"
    lines = ["   ID  STARTED           CONNECTION       PROTOCOL  STATUS        STATEMENTS"]
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"]))
        lines.append(
            f"{r['id']:>5}  {started}  {connection_label(r['connection'])[:15]:<15}  {r['protocol']:<8}  "
            f"{str(r['status'])[:12]:<12}  {r['statements']}"
        )
    return "\n".join(lines)
