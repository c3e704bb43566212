"""A cheap statement "shape": the text with literal values abstracted, used as a cache key.

Simple-protocol clients send `... WHERE aid = 4711` with a new number each time; parsing
every one would cost far more than relaying it. `shape()` replaces numbers and plain quoted
strings with placeholders in one regex pass. It gives up (returns None) on anything where a
lexer-level subtlety could change meaning — comments, backslashes, dollar quoting — so those
texts are simply parsed each time. The pipeline only reuses a classification for a shape
after checking that the shape classifies the same as a real text of that shape.
"""

from __future__ import annotations

import re

_TOKENS = re.compile(
    r'"(?:[^"]|"")*"'  # quoted identifier: kept
    r"|`(?:[^`]|``)*`"  # MySQL quoted identifier: kept
    r"|'(?:[^'\\]|'')*'"  # string literal: abstracted
    r"|(?<![\w$.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])"  # number: abstracted
)
_GIVE_UP = re.compile(r"--|/\*|#|\\|\$[A-Za-z_$]|\$\d+\$")


_PLACEHOLDER = {"postgres": "$1", "mysql": "?"}


def shape(text: str, dialect: str) -> str | None:
    """The text with literals replaced by a parameter placeholder the dialect's parser accepts."""
    if len(text) > 4096 or _GIVE_UP.search(text):
        return None
    mark = _PLACEHOLDER.get(dialect)
    if mark is None:
        return None

    def placeholder(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if token[0] in '"`' else mark

    return _TOKENS.sub(placeholder, text)
