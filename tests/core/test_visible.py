"""Untrusted text rendered inert: every character that could act on a terminal or hide from a
reader is shown as a visible escape; everything else is left as typed."""

from __future__ import annotations

import io
import logging
import unicodedata

from hoop.core.visible import InertLogFormatter, pieces, visible

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
UNSAFE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def unsafe(text: str, keep: str = "") -> list[str]:
    return [c for c in text if c not in keep and unicodedata.category(c) in UNSAFE]


def test_escape_sequences_are_shown_not_sent() -> None:
    assert visible(OSC52) == r"\x1b]52;c;ZWNobyBwd25lZA==\x07"
    assert visible("update t\r\x1b[2K\x1b[1Ainsert") == r"update t\r\x1b[2K\x1b[1Ainsert"
    assert visible("a\x00b\x7fc\x08") == r"a\x00b\x7fc\x08"


def test_one_line_shows_newlines_and_tabs_multi_line_keeps_them() -> None:
    text = "select 1 -- note\n\tdelete from t"
    assert visible(text) == r"select 1 -- note\n\tdelete from t"
    assert visible(text, multiline=True) == text
    assert visible("a\r\nb", multiline=True) == "a\\r\nb", "a carriage return is never kept"


def test_c1_controls_and_format_characters_are_escaped() -> None:
    assert visible("\x9b31m red") == r"\u009b31m red"  # a CSI on terminals that read 8-bit controls
    assert visible("\x9d0;title\x9c") == r"\u009d0;title\u009c"
    assert visible("file\u202egnp.exe") == r"file\u202egnp.exe"  # would display reversed
    assert visible("\u2066x\u2069 \u200bzero\ufeff") == r"\u2066x\u2069 \u200bzero\ufeff"
    assert visible("tag\U000e0041") == r"tag\U000e0041"
    assert visible("a\u2028b\u2029c") == r"a\u2028b\u2029c"


def test_bytes_that_were_not_text_show_as_bytes_and_print() -> None:
    raw = b"select 1 /* \xff\x9b */".decode("utf-8", "surrogateescape")
    shown = visible(raw)
    assert shown == r"select 1 /* \xff\x9b */"
    shown.encode("utf-8")  # strict: printing cannot fail
    # a byte 0x9b and the character U+009B are told apart
    assert visible("\udc9b") != visible("\x9b")
    assert visible("\ud800") == r"\ud800"


def test_everything_else_is_left_as_typed() -> None:
    for text in (
        "select * from t where name = 'Zoë' and city = '東京' -- 🙂",
        r"select E'\x1b', 'it\'s', '\\n'",  # backslashes are not doubled: SQL reads as typed
        "[bold]not markup[/]",
        "",
    ):
        assert visible(text) == text
        assert visible(text, multiline=True) == text


def test_nothing_unsafe_survives_any_character() -> None:
    every = "".join(chr(c) for c in range(0x30000))
    assert unsafe(visible(every)) == []
    assert unsafe(visible(every, multiline=True), keep="\n\t") == []
    assert unsafe(visible("".join(chr(c) for c in range(0xE0000, 0x110000)))) == []


def test_pieces_mark_the_escapes() -> None:
    assert list(pieces("a\x1bb\n")) == [("a", False), (r"\x1b", True), ("b", False), (r"\n", True)]
    assert list(pieces("a\n", multiline=True)) == [("a\n", False)]


def test_log_lines_are_inert() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(InertLogFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("hoop.test.visible")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("user %s\nFAKE INFO line", OSC52)
        try:
            raise ValueError(f"bad {OSC52}")
        except ValueError:
            logger.exception("failed on %s", "\x9b2J")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert unsafe(text, keep="\n") == []
    lines = text.splitlines()
    assert lines[0] == r"WARNING user \x1b]52;c;ZWNobyBwd25lZA==\x07\nFAKE INFO line", "one record, one line"
    assert r"ERROR failed on \u009b2J" in lines and r"ValueError: bad \x1b]52;c;ZWNobyBwd25lZA==\x07" in lines
    assert "Traceback" in text, "a traceback keeps its lines"
