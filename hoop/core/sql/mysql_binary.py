"""MySQL text whose only bytes outside the session's character set are inside `_binary'...'`
literals, as PyMySQL and others send `bytes` parameters.

The server reads such a literal as bytes whatever the character set, so it runs text the
gateway would otherwise refuse as undecodable. In a UTF-8 session (utf8mb4, utf8mb3) a byte
that is not part of a valid sequence is one byte to the server's lexer and can never be a
quote or a backslash (every byte of a multi-byte sequence is >= 0x80), so decoding each such
byte as a lone surrogate (`surrogateescape`) splits the text exactly as the server does. The
text is accepted only when every such byte lies inside a string literal directly introduced
by `_binary`, under each reading of versioned comments the classifier uses; anywhere else (a
plain string, a name, a comment) it is refused as before.
"""

from __future__ import annotations

import re

from hoop.core.sql.mysql_lexer import MySQLSyntaxError, Tok, lex
from hoop.core.sql.textmode import TextMode

_ESCAPED = re.compile("[\udc80-\udcff]")  # a byte that is not valid UTF-8 (valid UTF-8 never decodes to these)


def binary_literal_text(raw: bytes, mode: TextMode) -> str | None:
    """`raw` as text when its undecodable bytes all lie inside `_binary` literals; else None."""
    if mode.codec != "utf-8":
        return None
    text = raw.decode("utf-8", "surrogateescape")
    total = len(_ESCAPED.findall(text))
    if not total:
        return None
    versions = (mode.server_version,) if mode.server_version else (0, 1)  # unknown: run all, or none
    for six_digits in (True, False):
        for version in versions:
            try:
                toks, _ = lex(
                    text,
                    backslash=mode.backslash_escapes,
                    six_digits=six_digits,
                    ansi_quotes=mode.ansi_quotes,
                    server_version=version,
                    mariadb=mode.mariadb,
                )
            except MySQLSyntaxError:
                return None
            if _inside_binary_literals(text, toks) != total:
                return None
    return text


def _inside_binary_literals(text: str, toks: list[Tok]) -> int:
    """How many undecodable bytes lie between the quotes of a `_binary`-introduced string."""
    count = 0
    for prev, tok in zip(toks, toks[1:], strict=False):
        if tok.kind == "string" and prev.kind == "word" and prev.text.lower() == "_binary":
            count += len(_ESCAPED.findall(text, tok.start + 1, tok.end - 1))
    return count
