"""Generated statement texts for the PostgreSQL parity test: seeded, deterministic, harmless.

Every text is one simple-protocol Query of one to four statements, each a SELECT, an INSERT INTO
probe, an UPDATE probe or a DELETE FROM probe (a temporary table, in a transaction the test
rolls back), so what the server ran reads off its command tags. The statements carry string
literals (plain, E'', U&'', dollar-quoted), quoted names and comments whose contents are built
from pieces that move a statement boundary when one side reads a byte differently: backslashes,
doubled and lone quotes, dollar signs, comment markers, and the characters of the encoding that
end in an ASCII byte (a SJIS character ending in 0x5C reads as a letter and a backslash to a
reader that takes the wrong encoding). A smuggled `'); DELETE FROM probe ...` after such a piece
is one statement to one reading and two to the other, each of them valid SQL.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# Every encoding the test runs, in report order. SQL_ASCII sends bytes unconverted; the server
# then checks them as its own encoding (UTF8 here).
ENCODINGS = (
    "UTF8",
    "SQL_ASCII",
    "LATIN1",
    "WIN1252",
    "SJIS",
    "SHIFT_JIS_2004",
    "BIG5",
    "GBK",
    "GB18030",
    "UHC",
    "JOHAB",
    "EUC_JP",
    "EUC_JIS_2004",
    "EUC_KR",
    "EUC_CN",
)
SEED = 13
# ASCII bytes that change the scanner's state, as the second byte of a would-be character.
TRAILS = b"\"$'*-/;\\`|0@A~"
# The third and fourth bytes tried after a high second byte (EUC 3-byte, GB18030 4-byte forms).
LONG_TAILS = (b"\xa1", b"\xfe\x30", b"\x5c", b"\x27", b"\x81\x30", b"\x84\x31", b"\xa1\xa1")


@dataclass
class CharPool:
    """Byte strings the server reads in one encoding: `tricky` characters contain an ASCII byte
    (0x5C, 0x27, ...) after their first, `plain` ones do not, `invalid` ones the server rejects."""

    tricky: list[bytes] = field(default_factory=list)
    plain: list[bytes] = field(default_factory=list)
    invalid: list[bytes] = field(default_factory=list)


def pool_probes() -> list[bytes]:
    """Candidate characters: every high byte alone, followed by each scanner-relevant ASCII byte,
    by a few high bytes, and the longer forms some encodings have."""
    probes: list[bytes] = []
    for lead in range(0x80, 0x100):
        probes.append(bytes([lead]))
        probes += [bytes([lead, t]) for t in TRAILS]
        probes += [bytes([lead, t]) for t in (0x81, 0xA1, 0xB0, 0xC8, 0xE0, 0xFE)]
        probes += [bytes([lead, second]) + tail for second in (0x30, 0x39, 0xA4, 0xB5) for tail in LONG_TAILS]
    return probes


def make_pool(probes: list[bytes], readings: list[str | None]) -> CharPool:
    """Sort the probes by how the server read them (one character, or rejected)."""
    pool = CharPool()
    for raw, text in zip(probes, readings, strict=True):
        if text is None:
            pool.invalid.append(raw)
        elif len(text) == 1 and len(raw) > 1:
            (pool.tricky if any(b < 0x80 for b in raw[1:]) else pool.plain).append(raw)
        elif len(text) == 1 and len(raw) == 1:
            pool.plain.append(raw)
    return pool


@dataclass(frozen=True)
class Case:
    raw: bytes
    tricky: bool  # holds a character of the encoding that contains an ASCII byte


# Statements a smuggled piece tries to run, by what follows the literal it sits in: its own
# closing `)` and the end of the statement (CALL), ` IS NULL` and the end (BARE), or more of a
# select list (LIST). The rest of the statement after the literal completes each one, and each
# one's command tag names it.
CALL = (
    b"DELETE FROM probe WHERE n = length(",
    b"INSERT INTO probe VALUES (length(",
    b"UPDATE probe SET n = 1 WHERE n = length(",
    b"SELECT length(",
)
BARE = (
    b"DELETE FROM probe WHERE ",
    b"INSERT INTO probe SELECT 1 WHERE ",
    b"UPDATE probe SET n = 1 WHERE ",
    b"SELECT ",
)
LIST = (b"SELECT length(",)
SIMPLE = (b"DELETE FROM probe", b"INSERT INTO probe VALUES (1)", b"UPDATE probe SET n = 2", b"SELECT 3")


class Generator:
    """Texts for one encoding, from its pool; the same seed gives the same texts."""

    def __init__(self, encoding: str, pool: CharPool, seed: int = SEED) -> None:
        self.rng = random.Random(f"{seed}:{encoding}")
        self.pool = pool
        self.used_tricky = False

    def cases(self, count: int) -> list[Case]:
        out = []
        for _ in range(count):
            self.used_tricky = False
            raw = self.text()
            out.append(Case(raw, self.used_tricky))
        return out

    # -- characters --------------------------------------------------------------------------

    def char(self) -> bytes:
        r = self.rng.random()
        if r < 0.45 and self.pool.tricky:
            self.used_tricky = True
            return self.rng.choice(self.pool.tricky)
        if r < 0.97 and self.pool.plain:
            return self.rng.choice(self.pool.plain)
        if self.pool.invalid:
            return self.rng.choice(self.pool.invalid)
        return b"x"

    # -- the text ----------------------------------------------------------------------------

    def text(self) -> bytes:
        statements = [self.statement() for _ in range(self.rng.choice((1, 1, 2, 2, 3, 4)))]
        out = self.rng.choice((b"", b"", b"-- lead\n", b"/* lead */ ", b"\n"))
        for i, stmt in enumerate(statements):
            out += stmt
            if i < len(statements) - 1:
                out += self.rng.choice((b";", b"; ", b";\n", b" ;; ", b"; -- sep\n", b"; /* sep */"))
        return out + self.rng.choice((b"", b";", b" ; ", b"\n-- tail", b"; /* tail */"))

    def statement(self) -> bytes:
        lit = self.literal
        choices: list[Callable[[], bytes]] = [
            lambda: b"SELECT length(" + lit(CALL) + b")",
            lambda: b"SELECT length(" + lit(LIST) + b") AS " + self.name(),
            lambda: b"SELECT length(" + lit(LIST) + b"), " + lit(BARE) + b" IS NULL",
            lambda: b"INSERT INTO probe VALUES (length(" + lit(CALL) + b"))",
            lambda: b"DELETE FROM probe WHERE n = length(" + lit(CALL) + b")",
            lambda: b"UPDATE probe SET n = 0 WHERE " + lit(BARE) + b" IS NULL",
            lambda: b"SELECT 1 " + self.comment() + b" , 2",
            lambda: b"VALUES (length(" + lit(CALL) + b"))",
            lambda: b"TABLE probe",
            self.balanced,
            self.balanced,
        ]
        return self.rng.choice(choices)()

    def balanced(self) -> bytes:
        """Valid SQL whichever way the character before the second quote is read:

            SELECT length('a\\') AS x, length(') ; DELETE FROM probe ; -- ')

        is one SELECT where that quote ends the literal, and a SELECT and a DELETE where it
        does not (the last quote then sits in a comment)."""
        prefix = self.rng.choice((b"", b"", b"E", b"N"))
        escape = self.pick((b"\\", b"\\", b"\\\\", b"", None, None, None))
        body = self.pick((b"a", b"", None))
        return (
            b"SELECT length("
            + prefix
            + b"'"
            + body
            + escape
            + b"') AS x, length(') ; "
            + self.rng.choice(SIMPLE)
            + b" ; -- ')\n"
        )

    def literal(self, smuggled: tuple[bytes, ...]) -> bytes:
        form = self.rng.random()
        if form < 0.4:
            prefix = self.rng.choice((b"", b"", b"", b"N", b"n"))
            return prefix + b"'" + self.content(b"'", smuggled) + b"'"
        if form < 0.65:
            return self.rng.choice((b"E", b"e")) + b"'" + self.content(b"'", smuggled, escapes=True) + b"'"
        if form < 0.75:
            return self.unicode_literal()
        if form < 0.95:
            tag = self.rng.choice((b"", b"", b"t", b"q_1", None))
            if tag is None:
                tag = self.rng.choice(self.pool.plain) if self.pool.plain else b"x"  # a tag may hold any high byte
            return b"$" + tag + b"$" + self.content(b"$", smuggled) + b"$" + tag + b"$"
        return self.rng.choice((b"B'0101'", b"X'1F'", b"'a' 'b'", b"'a'\n'b'", b"'\\'\n'x'"))

    def unicode_literal(self) -> bytes:
        body = b"".join(
            self.rng.choice((b"a", b"\\0041", b"\\\\", b"\\+000042", b"''", b"!0043", b" ")) for _ in range(3)
        )
        if b"!" in body or self.rng.random() < 0.2:
            return b"U&'" + body.replace(b"\\", b"!") + b"' UESCAPE '!'"
        return b"U&'" + body + b"'"

    def pick(self, options: tuple[bytes | None, ...]) -> bytes:
        """One of `options`, where None stands for a character of the encoding."""
        choice = self.rng.choice(options)
        return self.char() if choice is None else choice

    def name(self) -> bytes:
        shape = self.rng.choice(((b"x",), (b"a", b'""', b"b"), (b"\\",), (b"a\\", b"'"), (None,), (None, b"y")))
        parts = [self.char() if p is None else p for p in shape]
        if self.rng.random() < 0.15:
            parts = [b"x", self.char(), b'", 1 AS "z']  # ends the name early to a reader that splits the character
        if self.rng.random() < 0.2:
            return b'U&"' + b"".join(parts).replace(b"\\", b"\\\\") + b'"'
        return b'"' + b"".join(parts) + b'"'

    def comment(self) -> bytes:
        options = (b" x ", b"'", b"/* in */", b"/*", b"*/", b"\\", b";", b"$$", None)
        body = b"".join(self.pick(options) for _ in range(self.rng.randint(0, 3)))
        if self.rng.random() < 0.5:
            return b"/*" + body + b"*/"
        return b"--" + body + b"\n"

    def content(self, quote: bytes, smuggled: tuple[bytes, ...], escapes: bool = False) -> bytes:
        """Literal content: mostly well-formed, often with a piece one side reads differently
        followed by a smuggled statement that is valid SQL only if that piece ends the literal."""
        pieces: list[bytes] = []
        for _ in range(self.rng.randint(0, 4)):
            r = self.rng.random()
            if r < 0.3:
                pieces.append(self.char())
            elif r < 0.45:
                pieces.append(self.rng.choice((b"a", b" ", b"xyz", b";", b"--", b"/*", b"*/", b'"')))
            elif r < 0.6:
                pieces.append(self.rng.choice((b"\\", b"\\\\", b"\\'", b"\\\\'", b"''")))
            elif r < 0.68 and escapes:
                pieces.append(self.rng.choice((b"\\x41", b"\\101", b"\\u0041", b"\\U00000042", b"\\n", b"\\b")))
            elif r < 0.75:
                pieces.append(self.rng.choice((b"$", b"$$", b"$t$", b"'")))
            else:
                pieces.append(self.smuggle(quote, smuggled))
        return b"".join(pieces)

    def smuggle(self, quote: bytes, smuggled: tuple[bytes, ...]) -> bytes:
        """A piece that may end the literal early, then a statement that reopens one."""
        before = self.pick((b"\\", b"", None, None, b"\\\\"))
        opener = quote if quote == b"'" else b"$$"
        closer = b")" if smuggled is not BARE else b" IS NULL"
        return before + opener + closer + b"; " + self.rng.choice(smuggled) + opener
