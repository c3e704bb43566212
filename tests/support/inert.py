"""Hostile text for display tests, and the check that an output is inert.

The check does not use the code under test: it asks `unicodedata` which characters can act on
a terminal or hide from a reader (controls, format characters such as bidi overrides, line and
paragraph separators, lone surrogates) and requires that none is left.
"""

from __future__ import annotations

import unicodedata

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # writes "echo pwned" into the clipboard
ERASE = "\r\x1b[2K\x1b[1A\x1b[2K"  # back to the line start, erase it and the line above
MARKUP = "[bold]x[/] [/] [@click=app.quit]q[/] [link=https://example.com]l[/link]"
C1_CSI = "\x9b2J"  # an 8-bit CSI: clears the screen on terminals that read C1 controls
REVERSED = "\u202eevil\u202c"  # displays reversed

# A statement an attacker hopes the approver reads as a harmless insert.
STATEMENT = (
    f'update "x[/]y" /*{OSC52}*/ set v = 0 where id > 0 '
    f"/*{ERASE}insert into t values (3) {MARKUP} {C1_CSI} {REVERSED} */"
)
# How each piece reads once rendered inert.
SHOWN = {
    "osc52": r"\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "erase": r"\r\x1b[2K\x1b[1A\x1b[2K",
    "markup": MARKUP,
    "c1": r"\u009b2J",
    "reversed": r"\u202eevil\u202c",
}
SHOWN_STATEMENT = (
    f'update "x[/]y" /*{SHOWN["osc52"]}*/ set v = 0 where id > 0 '
    f"/*{SHOWN['erase']}insert into t values (3) {MARKUP} {SHOWN['c1']} {SHOWN['reversed']} */"
)

HOSTILE_USER = "mal\x1b[8mlory[/]"  # ESC [ 8 m: the rest of the line invisible
SHOWN_USER = r"mal\x1b[8mlory[/]"
# Every door refuses a login name with control or invisible characters, so a user who really
# logs in can only carry markup: printable, no white space, and read as markup by Textual.
LOGIN_USER = "mal[/]lory[@click=app.quit]"
HOSTILE_RULE = "hold\x1b]0;pwned\x07-updates"  # OSC 0: sets the window title
SHOWN_RULE = r"hold\x1b]0;pwned\x07-updates"

_ACTIVE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def active_characters(text: str, keep: str = "\n") -> list[str]:
    """Characters of `text` that could act on a terminal or hide, other than those in `keep`."""
    return sorted({c for c in text if c not in keep and unicodedata.category(c) in _ACTIVE})


def assert_inert(text: str, *shown: str, keep: str = "\n") -> None:
    """`text` holds no active character, and shows each of `shown` literally."""
    assert active_characters(text, keep) == [], f"active characters reached the output: {text!r}"
    for piece in shown:
        assert piece in text, f"{piece!r} is not shown in {text!r}"


def toml_string(text: str) -> str:
    """`text` as a TOML basic string (control characters as \\uXXXX escapes)."""
    out = []
    for c in text:
        out.append(f"\\u{ord(c):04x}" if unicodedata.category(c) in _ACTIVE or c in '"\\' else c)
    return '"' + "".join(out) + '"'
