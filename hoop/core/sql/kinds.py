"""The statement kinds a rule can name: every `kind` and `kind object` the classifiers produce.

The vocabulary is read from the classifiers' own tables (PostgreSQL's node-class map and
object types, MySQL's keyword tables, the shell's "command"), plus the few kinds each
classifier builds in code, so a rule's `statements = [...]` is checked against exactly what
can ever match. `tests/core/sql/test_kinds.py` classifies both corpora and asserts that no
statement falls outside this vocabulary.

Kinds whose object is a user's name (a variable, a prepared statement, a SHOW target) accept
any object: `set search_path`, `show processlist`, `prepare q1`.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

# Kinds whose object is free text chosen by the user or the next keyword of the statement.
FREE_OBJECT_KINDS = frozenset(
    {
        "set",
        "reset",
        "show",
        "use",
        "prepare",
        "execute",
        "deallocate",
        "call",
        "load",
        "start",
        "command",
        # MySQL statements classified by their first keyword; the object is the second one.
        "kill",
        "flush",
        "install",
        "uninstall",
        "handler",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "xa",
        "unlock",
        "optimize",
        "repair",
        "check",
        "checksum",
        "purge",
        "change",
        "stop",
        "shutdown",
        "restart",
        "help",
        "cache",
        "signal",
        "resignal",
        "get",
        "backup",
        "clone",
        "import",
        "lock",
    }
)

# Kinds (and "kind object" pairs) built in code by the classifiers rather than read from a table.
_CODED = (
    "select",
    "insert",
    "update",
    "delete",
    "replace",
    "merge",
    "copy",
    "explain",
    "do",
    "do block",
    "begin",
    "vacuum",
    "analyze",
    "analyze table",
    "fetch cursor",
    "move cursor",
    "create user",
    "create group",
    "create role",
    "create function",
    "create procedure",
    "create table",
    "grant role",
    "revoke role",
    "grant",
    "revoke",
    "truncate table",
    "rename",
    "rename table",
    "load_data",
    "binlog",
    "unknown",
    # Inner statements that name what an ALTER removes (ALTER TABLE ... DROP COLUMN, ...).
    "drop column",
    "drop constraint",
    "drop partition",
    "truncate partition",
    "drop index",
    "drop primary key",
    "drop foreign key",
    "drop check",
    "show columns",
)


def _postgres() -> set[str]:
    from pglast import ast, enums

    from . import postgres as pg

    out: set[str] = set()
    for kind, obj in pg._SIMPLE_KINDS.values():
        out.add(f"{kind} {obj}".strip())
    out |= set(pg._TX_KINDS.values())
    objects = {pg._objtype(member) for member in enums.ObjectType}
    for verb in ("create", "alter", "drop", "grant", "revoke", "comment", "security label"):
        out |= {f"{verb} {o}" for o in objects}
    for name in dir(ast):
        for prefix in ("Create", "Alter", "Drop"):
            if name.startswith(prefix) and name.endswith("Stmt"):
                out.add(f"{prefix.lower()} {pg._camel_object(name, prefix)}")
    return out


def _mysql() -> set[str]:
    from .mysql_words import OBJECTS, SIMPLE, STARTERS

    out = {w.lower() for w in STARTERS} | set(SIMPLE.values())
    for verb in ("create", "alter", "drop", "rename", "truncate"):
        out.add(verb)
        out |= {f"{verb} {o}" for o in OBJECTS.values()}
    return out


@lru_cache(maxsize=1)
def statement_vocabulary() -> tuple[frozenset[str], frozenset[str]]:
    """(kinds, "kind object" pairs) every classifier can produce."""
    pairs = _postgres() | _mysql() | set(_CODED) | FREE_OBJECT_KINDS
    kinds = {p.split(" ", 1)[0] for p in pairs}
    # Multi-word kinds: the whole phrase is the kind.
    kinds |= {"security label", "prepare transaction"}
    return frozenset(kinds), frozenset(p for p in pairs if " " in p)


def known_statement(entry: str) -> bool:
    """Can `entry` (a rule's statements item: a kind, "kind object", or a glob) match anything?"""
    kinds, pairs = statement_vocabulary()
    if entry == "command" or entry.startswith("command "):
        return True
    pattern = re.compile(fnmatch.translate(entry))
    if any(pattern.fullmatch(k) for k in kinds) or any(pattern.fullmatch(p) for p in pairs):
        return True
    return any(entry.startswith(k + " ") and entry[len(k) + 1 :].strip() for k in FREE_OBJECT_KINDS)


def kinds_text() -> str:
    """The valid kinds, for an error message."""
    return ", ".join(sorted(statement_vocabulary()[0]))
