"""Keep passwords that users type into statements out of recordings, the store and audit.

`ALTER ROLE x PASSWORD 'p'`, `CREATE USER u IDENTIFIED BY 'p'`, `SET PASSWORD = ...` carry a
credential in a literal. Before such a statement is written anywhere, every quoted literal
in it is replaced; statements without a password keyword are returned unchanged (one regex
search). Result values are handled by masking; this is about statement text.
"""

from __future__ import annotations

import re

_HINT = re.compile(r"password|identified|secret|passwd|pwd", re.IGNORECASE)
# Quoted literals (standard, E'...' / backslash-escaped, dollar-quoted) and hex blobs.
_LITERAL = re.compile(r"\$([A-Za-z_]*)\$.*?\$\1\$|'(?:[^'\\]|''|\\.)*'|\"(?:[^\"\\]|\"\"|\\.)*\"", re.DOTALL)
MASK = "'****'"


def redact_statement(text: str) -> str:
    if not _HINT.search(text):
        return text
    return _LITERAL.sub(MASK, text)
