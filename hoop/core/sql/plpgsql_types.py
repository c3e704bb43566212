"""Type names the PL/pgSQL parser cannot look up, replaced by a neutral type before parsing.

The PL/pgSQL parser used here resolves type names without a database: it knows `pg_catalog`
and `public` only, and refuses a type qualified with any other schema (`RETURNS SETOF app.acc`,
`DECLARE x app.money_t;`), which the server's own catalog output writes for every type outside
the search path. Types decide nothing the guardrails read (the statements of the body are
kept as they are), so such a type is replaced by `text` in the header (parameters, result)
and in DECLARE sections, and the body is parsed again.
"""

from __future__ import annotations

from typing import Any

from pglast import ast
from pglast.parser import scan
from pglast.stream import RawStream

_KNOWN = frozenset({"pg_catalog", "public"})
_NOT_A_TYPE = frozenset({"ALIAS", "CURSOR", "NO", "SCROLL"})


def _neutral(type_name: Any) -> Any:
    names = [str(getattr(n, "sval", "")).lower() for n in getattr(type_name, "names", None) or ()]
    if len(names) < 2 or names[0] in _KNOWN or getattr(type_name, "pct_type", False):
        return type_name
    return ast.TypeName(
        names=(ast.String(sval="pg_catalog"), ast.String(sval="text")),
        setof=type_name.setof,
        arrayBounds=type_name.arrayBounds,
        typemod=-1,
    )


def neutral_function(node: Any, body: str) -> str:
    """The CREATE FUNCTION text of `node` with neutral types in its header and declarations."""
    node.returnType = _neutral(node.returnType)
    for param in node.parameters or ():
        param.argType = _neutral(param.argType)
    for opt in node.options or ():
        if getattr(opt, "defname", None) == "as":
            opt.arg = (ast.String(sval=neutral_declarations(body)),)
    return str(RawStream()(node))


def neutral_declarations(body: str) -> str:
    """`body` with each DECLAREd variable's schema-qualified type replaced by `text`."""
    tokens = scan(body)
    spans: list[tuple[int, int]] = []
    declaring, decl_start = False, 0
    for i, tok in enumerate(tokens):
        if tok.name == "DECLARE":
            declaring, decl_start = True, i + 1
        elif declaring and tok.name == "BEGIN_P":
            declaring = False
        elif declaring and tok.name == "ASCII_59":  # ';' ends one declaration
            _declaration(body, tokens[decl_start:i], spans)
            decl_start = i + 1
    for start, end in reversed(spans):
        body = body[:start] + "text" + body[end:]
    return body


def _declaration(body: str, toks: list[Any], spans: list[tuple[int, int]]) -> None:
    """name [CONSTANT] schema.type ...: the span of a qualified type outside the known schemas."""
    at = 2 if len(toks) > 2 and body[toks[1].start : toks[1].end + 1].upper() == "CONSTANT" else 1
    if len(toks) < at + 3 or body[toks[at].start : toks[at].end + 1].upper() in _NOT_A_TYPE:
        return
    if toks[at + 1].name != "ASCII_46":  # not qualified
        return
    if len(toks) > at + 3 and toks[at + 3].name == "ASCII_37":  # %TYPE / %ROWTYPE: accepted as is
        return
    schema = body[toks[at].start : toks[at].end + 1].strip('"').lower()
    if schema not in _KNOWN:
        spans.append((toks[at].start, toks[at + 2].end + 1))
