"""How the server reads statement text in one session, so the gateway can read it the same way.

A server splits statement text into tokens under session settings: the client's character set
(a multibyte character can end in the byte of a quote or a backslash) and the string-literal
mode (whether a backslash escapes the next character, whether `"` quotes a string or a name).
A gateway that decoded as UTF-8 and parsed under default modes would see one statement where
the server runs two. So each door tracks these settings from the server's own reports and
hands a `TextMode` to the pipeline; the bytes are decoded with the session's codec and parsed
under its modes. A setting the gateway cannot read faithfully maps to no codec, and the door
refuses to judge text under it (fail closed) instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# PostgreSQL client encodings (as reported in ParameterStatus client_encoding) -> Python codec.
# Single-byte encodings cannot hide an ASCII byte inside a character, so any faithful byte-to-
# character table keeps statement boundaries. For the multibyte ones, every character the server
# accepts must decode to the same run of characters here, with every ASCII character in the same
# place (tests/core/sql/test_textmode_server.py checks each lead byte against the server): SJIS is
# Windows-932 and BIG5 includes the ETEN extensions on the server, and SHIFT_JIS_2004 needs the
# repairs in `_AFTER_DECODE`. Missing here: MULE_INTERNAL and EUC_TW (no Python codec), so text
# in them is refused.
PG_CODECS: dict[str, str] = {
    "UTF8": "utf-8",
    "LATIN1": "latin-1",
    "LATIN2": "iso8859-2",
    "LATIN3": "iso8859-3",
    "LATIN4": "iso8859-4",
    "LATIN5": "iso8859-9",
    "LATIN6": "iso8859-10",
    "LATIN7": "iso8859-13",
    "LATIN8": "iso8859-14",
    "LATIN9": "iso8859-15",
    "LATIN10": "iso8859-16",
    "ISO_8859_5": "iso8859-5",
    "ISO_8859_6": "iso8859-6",
    "ISO_8859_7": "iso8859-7",
    "ISO_8859_8": "iso8859-8",
    "WIN866": "cp866",
    "WIN874": "cp874",
    "WIN1250": "cp1250",
    "WIN1251": "cp1251",
    "WIN1252": "cp1252",
    "WIN1253": "cp1253",
    "WIN1254": "cp1254",
    "WIN1255": "cp1255",
    "WIN1256": "cp1256",
    "WIN1257": "cp1257",
    "WIN1258": "cp1258",
    "KOI8R": "koi8-r",
    "KOI8U": "koi8-u",
    "EUC_JP": "euc_jp",
    "EUC_CN": "gb2312",
    "EUC_KR": "euc_kr",
    "EUC_JIS_2004": "euc_jis_2004",
    "SJIS": "cp932",
    "SHIFT_JIS_2004": "shift_jis_2004",
    "BIG5": "cp950",
    "GBK": "gbk",
    "GB18030": "gb18030",
    "UHC": "cp949",
    "JOHAB": "johab",
}
# MySQL / MariaDB character sets (as the server reports character_set_client) -> Python codec.
# The server's lexer works on bytes: a quote, backslash or `;` byte ends a token unless the
# character set's own multibyte check swallows it as the tail of a character. So a codec is
# listed only where every sequence it decodes strictly is one character to the server too
# (checked against the server byte by byte: tests/e2e/test_mysql_textmode.py). gbk, big5,
# sjis, cp932 and gb18030 have tails in 0x40-0x7E (0x5C is the backslash); the EUC sets and
# UTF-8 only use bytes >= 0x80. MySQL's latin1 is Windows-1252. Missing here (no faithful
# codec, so text in them is refused unless it is plain ASCII): dec8, hp8, swe7, keybcs2,
# armscii8, geostd8, eucjpms; ucs2/utf16/utf32 are never client character sets.
MYSQL_CODECS: dict[str, str] = {
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "ascii": "ascii",
    "binary": "latin-1",
    "latin1": "cp1252",
    "latin2": "iso8859-2",
    "latin5": "iso8859-9",
    "latin7": "iso8859-13",
    "greek": "iso8859-7",
    "hebrew": "iso8859-8",
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
    "koi8r": "koi8-r",
    "koi8u": "koi8-u",
    "macroman": "mac-roman",
    "macce": "mac-latin2",
    "tis620": "tis-620",
    "gbk": "gbk",
    "gb2312": "gb2312",
    "gb18030": "gb18030",
    "big5": "big5",
    "sjis": "shift_jis",
    "cp932": "cp932",
    "ujis": "euc_jp",
    "euckr": "euc_kr",
}
# Handshake collation ids of the character sets a client most often asks for at login (the
# server reports the resulting character_set_client; this table names them in tests and logs).
MYSQL_CHARSET_IDS: dict[int, str] = {
    1: "big5",
    8: "latin1",
    13: "sjis",
    24: "gb2312",
    28: "gbk",
    33: "utf8mb3",
    45: "utf8mb4",
    63: "binary",
    95: "cp932",
    224: "utf8mb4",
    248: "gb18030",
}
# Bytes >= 0x80 the server's lexer takes for whitespace in single-byte character sets (NBSP in
# most), and the further ones that after `--` start a comment (its ctype calls them control
# characters), measured on the server; multibyte character sets have none.
MYSQL_SPACE_BYTES: dict[str, bytes] = {
    cs: b"\xa0" for cs in ("latin1", "latin2", "latin5", "latin7", "greek", "hebrew", "cp1250")
} | {"cp852": b"\xff", "cp866": b"\xff"}
MYSQL_DASH_COMMENT_BYTES: dict[str, bytes] = {
    "latin7": bytes.fromhex("818388 8a8c90 989a9c 9fa1a5"),
    "hebrew": b"\xfd\xfe",
    "cp1250": bytes.fromhex("8081838890 98"),
    "cp850": b"\xff",
    "macroman": b"\x80\xcb\xe5",
}
# sql_mode flags under which MariaDB reads statements with another grammar (ORACLE: PL/SQL
# blocks, `AS`/`IS` routine bodies) or other quoting (MSSQL): the gateway does not follow them.
MYSQL_UNSUPPORTED_MODES = frozenset({"ORACLE", "MSSQL"})
# Codecs whose every byte is one character: a byte Python has no character for cannot move a
# statement boundary, so it is read as U+FFFD instead of refusing the whole text.
SINGLE_BYTE = frozenset(
    c
    for c in (*PG_CODECS.values(), *MYSQL_CODECS.values())
    if c.startswith(("latin", "iso8859", "cp8", "cp12", "koi8", "mac-", "tis-", "ascii"))
)
# Where a Python codec reads some bytes unlike the server, per codec: characters to translate
# after decoding, and characters to refuse (with the byte each comes from). Each listed character
# comes only from that one single byte, never from a multibyte character, so this is exact.
# - shift_jis_2004 reads the bytes 0x5C and 0x7E as YEN SIGN and OVERLINE; the server reads them
#   as ASCII backslash and tilde, so a backslash the server sees would vanish from the text.
# - cp932 reads the bytes 0x80, 0xA0 and 0xFD-0xFF as characters of their own; the server reads
#   each as the first byte of a two-byte character and rejects it as invalid (MySQL's cp932 reads
#   them as single bytes; refusing them there only refuses text no client sends).
_AFTER_DECODE: dict[str, tuple[dict[int, str], dict[str, int]]] = {
    "shift_jis_2004": ({0xA5: "\\", 0x203E: "~"}, {}),
    "cp932": ({}, {"\x80": 0x80, "\uf8f0": 0xA0, "\uf8f1": 0xFD, "\uf8f2": 0xFE, "\uf8f3": 0xFF}),
}


class TextModeError(ValueError):
    """The gateway cannot read this text the way the server will; the door refuses it."""

    def __init__(self, message: str, sqlstate: str = "22021") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True, slots=True)
class TextMode:
    """The settings that decide how statement text splits into tokens in one session.

    `codec` is the Python codec for the client's bytes ("" when the gateway has none for the
    session's character set, named in `charset`). `backslash_escapes`: a backslash escapes the
    next character inside plain '...' strings (PostgreSQL standard_conforming_strings = off;
    MySQL without NO_BACKSLASH_ESCAPES). `ansi_quotes`: MySQL ANSI_QUOTES, "..." is a name.
    `server_version` (MySQL / MariaDB, e.g. 101119 for 10.11.19; 0 when unknown) and `mariadb`
    decide which versioned comments (`/*!50700 ... */`) the server runs and which it skips.
    `pipes_as_concat`: MySQL PIPES_AS_CONCAT (also part of ANSI), `||` concatenates strings;
    `high_not_precedence`: HIGH_NOT_PRECEDENCE, `NOT a IN (...)` is `(NOT a) IN (...)`;
    `empty_string_is_null`: MariaDB EMPTY_STRING_IS_NULL, the literal '' is NULL.
    """

    charset: str = "UTF8"
    codec: str = "utf-8"
    backslash_escapes: bool = False
    ansi_quotes: bool = False
    server_version: int = 0
    mariadb: bool = False
    pipes_as_concat: bool = False
    high_not_precedence: bool = False
    empty_string_is_null: bool = False

    def decode(self, raw: bytes | memoryview) -> str:
        """The text as the server will read it; TextModeError where the gateway cannot."""
        data = bytes(raw)
        if data.isascii():
            return data.decode("ascii")  # every client character set reads ASCII as ASCII
        if not self.codec:
            raise TextModeError(
                f"Hoop cannot read text in the client character set {self.charset}; "
                "switch the session to UTF8 (or another supported character set) first",
                "0A000",
            )
        try:
            text = data.decode(self.codec, "replace" if self.codec in SINGLE_BYTE else "strict")
        except UnicodeDecodeError as exc:
            raise TextModeError(
                f'invalid byte sequence for encoding "{self.charset}": 0x{data[exc.start : exc.start + 2].hex()}'
            ) from None
        repairs = _AFTER_DECODE.get(self.codec)
        if repairs is None:
            return text
        translate, refuse = repairs
        for char, byte in refuse.items():
            if char in text:
                raise TextModeError(f'invalid byte sequence for encoding "{self.charset}": 0x{byte:02x}')
        return text.translate(translate) if translate else text

    @staticmethod
    def depends_on_settings(raw: bytes | memoryview, *, double_quotes: bool = False) -> bool:
        """Could this text split differently under other settings? Only a byte >= 0x80 (read by
        the character set), a backslash (read by the string mode) or, where a mode decides what
        `"` quotes (MySQL ANSI_QUOTES), a double quote can make it so: other ASCII text reads
        the same under every supported setting."""
        data = bytes(raw) if isinstance(raw, memoryview) else raw
        return not data.isascii() or b"\\" in data or (double_quotes and b'"' in data)


UTF8 = TextMode()


def postgres_mode(client_encoding: str, standard_conforming_strings: str, server_encoding: str = "UTF8") -> TextMode:
    """The TextMode of a PostgreSQL session from its reported parameters."""
    name = client_encoding.upper().replace("-", "_")
    name = {"UTF_8": "UTF8", "UNICODE": "UTF8", "SHIFT_JIS": "SJIS"}.get(name, name)
    if name == "SQL_ASCII":
        # No conversion: the server checks the bytes as its own encoding (SQL_ASCII: any byte).
        server = server_encoding.upper()
        codec = "latin-1" if server == "SQL_ASCII" else PG_CODECS.get(server, "")
    else:
        codec = PG_CODECS.get(name, "")
    return TextMode(name, codec, backslash_escapes=standard_conforming_strings.lower() == "off")


def mysql_mode(character_set_client: str, sql_mode: str, server_version: int = 0, mariadb: bool = False) -> TextMode:
    """The TextMode of a MySQL / MariaDB session from the server's character_set_client and
    sql_mode (as reported by session tracking) and its version (handshake). A character set
    without a faithful codec gives codec "" (non-ASCII text refused); `unsupported_sql_mode`
    names modes to refuse."""
    name = character_set_client.strip().lower()
    flags = {f.strip().upper() for f in sql_mode.split(",")}
    return TextMode(
        name,
        MYSQL_CODECS.get(name, ""),
        backslash_escapes="NO_BACKSLASH_ESCAPES" not in flags,
        ansi_quotes="ANSI_QUOTES" in flags,
        server_version=server_version,
        mariadb=mariadb,
        pipes_as_concat="PIPES_AS_CONCAT" in flags,
        high_not_precedence="HIGH_NOT_PRECEDENCE" in flags,
        empty_string_is_null="EMPTY_STRING_IS_NULL" in flags,
    )


def mysql_version_id(version: str) -> int:
    """The version id of a server version string ("10.11.19-MariaDB-..." -> 101119), 0 if none."""
    m = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", version)
    return int(m.group(1)) * 10000 + int(m.group(2)) * 100 + int(m.group(3)) if m else 0


def unsupported_sql_mode(sql_mode: str) -> str:
    """The first sql_mode flag the gateway cannot read statements under, or ""."""
    flags = [f.strip().upper() for f in sql_mode.split(",")]
    return next((f for f in flags if f in MYSQL_UNSUPPORTED_MODES), "")
