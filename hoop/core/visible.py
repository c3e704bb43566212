"""Text from users and servers, shown inert: one rule for every display (TUI, CLI, replays, logs).

A statement, a user name or a server's error can carry characters that act on the terminal
showing them (an OSC 52 sequence writes the clipboard, CSI sequences move the cursor and erase
what an approver was about to read) or that hide from a reader (bidi overrides display text
reversed, zero-width characters). `visible` writes each such character as a visible escape
and leaves every other character as it is:

- C0 controls and DEL: `\\n`, `\\r`, `\\t` by name, the others as `\\xHH` (ESC is `\\x1b`).
  A multi-line display (`multiline=True`) keeps newlines and tabs as they are; `\\r` is always
  escaped, since it returns the cursor over text already shown.
- C1 controls (U+0080-U+009F; U+009B starts a CSI on terminals that read 8-bit controls),
  format characters (Unicode category Cf: bidi embeddings, overrides and isolates, zero-width
  spaces and joiners, the BOM, tag characters), line and paragraph separators: `\\uHHHH`, or
  `\\UHHHHHHHH` beyond the BMP.
- Bytes that were not valid text, kept as lone surrogates U+DC80-U+DCFF (Python's
  `surrogateescape`): `\\xHH` with HH from 80 to ff. So `\\x9b` is a raw byte and `\\u009b`
  the character U+009B. Any other lone surrogate is written `\\udHHH`. The result is always
  valid text: printing it cannot fail.

A backslash typed in the text is left alone, so SQL and shell text read exactly as typed (a
MySQL `'it\\'s'` stays as it is). The cost: the four typed characters `\\x1b` look like an
escaped ESC. That hides nothing, since every character is shown, itself or as an escape; the
TUI shows escapes in reverse video so the two can be told apart, and every `--json` output
gives the exact text.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Printable ASCII never needs a look; every other character is checked by its category.
_CANDIDATES = re.compile(r"[^\x20-\x7e]+")
_CANDIDATES_MULTILINE = re.compile(r"[^\x20-\x7e\n\t]+")


def is_active(char: str) -> bool:
    """Whether `char` could act on a terminal or hide from a reader (it is shown escaped)."""
    return unicodedata.category(char) in _ESCAPED_CATEGORIES


@lru_cache(maxsize=4096)
def _escape(char: str) -> str | None:
    """The visible form of one character, or None when it is shown as it is."""
    if char in _NAMED:
        return _NAMED[char]
    if not is_active(char):
        return None
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not valid text (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def pieces(text: str, *, multiline: bool = False) -> Iterator[tuple[str, bool]]:
    """`text` as runs shown as they are (False) and escapes (True), in order; runs of the
    first kind are as long as possible. Displays that style escapes use this."""
    plain_start = 0
    for match in (_CANDIDATES_MULTILINE if multiline else _CANDIDATES).finditer(text):
        for i in range(match.start(), match.end()):
            shown = _escape(text[i])
            if shown is None:
                continue
            if i > plain_start:
                yield text[plain_start:i], False
            yield shown, True
            plain_start = i + 1
    if plain_start < len(text):
        yield text[plain_start:], False


def visible(text: str, *, multiline: bool = False) -> str:
    """`text` with every character that could act on a terminal or hide written as a visible
    escape (see the module's rules). One line unless `multiline`: then newlines and tabs stay."""
    if (_CANDIDATES_MULTILINE if multiline else _CANDIDATES).search(text) is None:
        return text
    return "".join(piece for piece, _ in pieces(text, multiline=multiline))


class InertLogFormatter(logging.Formatter):
    """Log lines that cannot act on the terminal or the log viewer showing them, and one line per
    record: a user name or statement with a newline cannot forge a second log line. A traceback
    keeps its lines, its text made inert the same way."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return visible(super().formatException(ei), multiline=True)

    def formatStack(self, stack_info: str) -> str:
        return visible(super().formatStack(stack_info), multiline=True)


def inert_log_handler(stream: Any, fmt: str) -> logging.Handler:
    """A stream handler writing inert log lines in `fmt`."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(InertLogFormatter(fmt))
    return handler
