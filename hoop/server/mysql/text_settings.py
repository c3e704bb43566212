"""The MySQL relay's reading of statement text under the session's settings (session_vars.py).

Mixed into `Relay`: text is decoded with the session's character set and judged under its
sql_mode as the server last reported them; text that could read differently under other
settings waits until every earlier command is answered (their answers report any change)
and, when code the gateway did not read may have run (a routine, a view's function, a
trigger, dynamic SQL: any of them could switch the reports off), until the server has
reported the settings again. Text that would switch session tracking off, or that the
gateway cannot read as the server will, is answered with an error naming why.
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

from hoop.core.pipeline import Decision
from hoop.core.sql import Statement
from hoop.core.sql.mysql_binary import binary_literal_text
from hoop.core.sql.textmode import MYSQL_CODECS, TextMode, TextModeError
from hoop.core.store.wire_text import from_wire
from hoop.server.mysql import packets as p
from hoop.server.mysql.holds import Step
from hoop.server.mysql.response_events import Unit
from hoop.server.mysql.session_vars import TRACK_SQL, Settings, SettingsError, touches_tracking

ER_SETTINGS = (1235, "42000")  # ER_NOT_SUPPORTED_YET
ER_BAD_TEXT = (1300, "HY000")  # ER_INVALID_CHARACTER_STRING
# The way out of an sql_mode the gateway cannot read statements under (MariaDB's ORACLE):
# plain ASCII with no quote but '...' and no backslash, read alike under every mode.
_MODE_RESET = re.compile(
    rb"\s*SET\s+(?:SESSION\s+|@@SESSION\.|@@)?sql_mode\s*=\s*(?:'[A-Za-z_, ]*'|DEFAULT)\s*;?\s*", re.I
)
# The common ways to name a client character set: one the gateway cannot read is refused before
# it reaches the server (other spellings take effect and non-ASCII text is refused after).
_SET_CHARSET = re.compile(
    r"(?:^|;)\s*SET\s+(?:SESSION\s+|LOCAL\s+|@@SESSION\.|@@LOCAL\.|@@)?"
    r"(?:NAMES|CHARACTER\s+SET|CHARSET|character_set_client\s*:?=)\s*['\"`]?([A-Za-z0-9_]+)",
    re.I,
)
# Statement kinds that run no code the gateway did not read, when they name no table (a view
# or trigger could hide a routine) and call no function: the settings stay as last reported.
_INERT = frozenset(("select", "show", "set", "use", "begin", "commit", "rollback"))
# Words of a SET statement that may change how the server reads the text after it: sql_mode
# and the client character set in every spelling (NAMES, CHARACTER SET, CHARSET, the variable).
_READING_WORDS = frozenset(("sql_mode", "character_set_client", "names", "character", "charset"))
_WORDS = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]+")


def depends_on_settings(raw: bytes | memoryview) -> bool:
    """Could this text read differently under other settings? What `TextMode.depends_on_settings`
    names (bytes >= 0x80, a backslash, a double quote) and the ASCII that other sql_mode flags
    change. Such text waits for the answers of earlier commands (one may change the settings)."""
    data = bytes(raw) if isinstance(raw, memoryview) else raw
    if TextMode.depends_on_settings(data, double_quotes=True) or b"||" in data or b"''" in data:
        return True  # || under PIPES_AS_CONCAT, '' under EMPTY_STRING_IS_NULL
    return b"not" in data.lower()  # HIGH_NOT_PRECEDENCE (plain `in` tests: ~0.1 s for 20 MB, a regex 0.5 s)


class TextSettings:
    """The settings half of the relay: what `Relay` provides is declared below for the checker."""

    settings: Settings
    mode: TextMode | None
    unsynced: bool
    deferred: tuple[int, bytes] | None
    units: deque[Unit]

    if TYPE_CHECKING:

        def _forward(self, seq: int, payload: bytes, unit: Unit | None) -> Step: ...

        def _reply(self, seq: int, unit: Unit, code: int, sqlstate: str, message: str) -> Step: ...

        def _statement(
            self, seq: int, payload: bytes, text: str, kind: str, record: bool = True, mode: TextMode | None = None
        ) -> object: ...

    def _must_wait(self, seq: int, payload: bytes) -> bool:
        """Text that could read differently under other settings is judged only once every
        earlier command is answered (their answers report any change) and, when code the
        gateway did not read may have run, once the server has reported the settings again."""
        if not depends_on_settings(memoryview(payload)[1:]):
            return False
        if self.unsynced:
            self._resync()
        if not self.units:
            return False
        self.deferred = (seq, payload)
        return True

    def _resync(self) -> None:
        """Ask the server for the settings (its OK packet reports them); the answer is the
        gateway's own and never reaches the client."""
        self.unsynced = False
        self._forward(0, p.build_com_query(TRACK_SQL), Unit(TRACK_SQL, "single", record=False, internal=True))

    def settings_reported(self, changes: dict[str, str]) -> None:
        if self.settings.update(changes):
            self.unsynced = True  # the reports stopped: ask again before reading dependent text
        self._settings_changed()

    def settings_unknown(self, reason: str) -> None:
        self.settings.blind = reason
        self._settings_changed()

    def _settings_changed(self) -> None:
        try:
            self.mode = self.settings.check()
        except SettingsError:
            self.mode = None

    def _text_command(self, seq: int, payload: bytes, raw: bytes, kind: str, init_db: bool = False) -> Step:
        """Decode with the session's character set and judge under its sql_mode; text the
        gateway cannot read as the server will is answered with an error naming why."""
        # Refused text is recorded as sent (bytes that are not UTF-8 kept: see wire_text).
        label = ("<COM_INIT_DB> " if init_db else "") + from_wire(raw)
        if touches_tracking(raw):
            self._reply(
                seq,
                Unit(label, kind, "block", "settings"),
                *ER_SETTINGS,
                "Hoop reads statements under the character set and sql_mode the server reports "
                "through session_track_system_variables; changing session tracking is not allowed",
            )
            return None
        try:
            mode = self.settings.check()
            # Every client character set reads ASCII bytes as ASCII (the server's lexer works on
            # bytes), so plain ASCII text is read even where the gateway has no codec.
            if not mode.codec and raw.isascii():
                text = raw.decode("ascii")
            else:
                try:
                    text = mode.decode(raw)
                except TextModeError:
                    # bytes that are not text may stand in `_binary'...'` literals (bytes parameters)
                    if (binary := binary_literal_text(raw, mode)) is None:
                        raise
                    text = binary
        except SettingsError as exc:
            if self.settings.blind or self.settings.mode is None or not _MODE_RESET.fullmatch(raw):
                self._reply(seq, Unit(label, kind, "block", "settings"), *ER_SETTINGS, f"refused by Hoop: {exc}")
                return None
            mode, text = self.settings.mode, raw.decode("ascii")  # plain ASCII: every mode reads it alike
        except TextModeError as exc:
            code, state = ER_BAD_TEXT if isinstance(exc, TextModeError) and exc.sqlstate == "22021" else ER_SETTINGS
            self._reply(seq, Unit(label, kind, "block", "settings"), code, state, f"refused by Hoop: {exc}")
            return None
        if init_db:
            text = "USE `" + text.replace("`", "``") + "`"
        for m in _SET_CHARSET.finditer(text):
            charset = m.group(1).lower()
            if charset not in MYSQL_CODECS and charset != "default":
                self._reply(
                    seq,
                    Unit(text, kind, "block", "settings"),
                    *ER_SETTINGS,
                    f"refused by Hoop: Hoop cannot read text in the client character set {charset}; "
                    "use utf8mb4 (or another character set Hoop reads)",
                )
                return None
        return self._statement(seq, payload, text, kind, mode=mode)


def sets_something(decision: Decision) -> bool:
    """A SET statement or a run of prepared text: the quick path leaves it to `_text_command`
    and `_statement` (character set checks, settings changed within one text)."""
    cls = decision.classification
    return cls is None or any(s.kind in ("set", "execute") for s in cls.statements)


def _changes_reading(stmt: Statement) -> bool:
    """Could the server read text after this statement under other settings? A SET naming
    sql_mode or the client character set (a name in any quoting or case; any non-ASCII word,
    since the server folds names under its own collation), or prepared or immediate text the
    gateway cannot see whole (its body may be such a SET)."""
    for s in stmt.walk():
        if s.kind == "execute" and s.dynamic:
            return True
        if s.kind == "set" and any(w in _READING_WORDS or not w.isascii() for w in _WORDS.findall(s.text.lower())):
            return True
    return False


def settings_change_midway(decision: Decision) -> bool:
    """The server reads each statement of a multi-statement text only after running the ones
    before it: a statement that may change sql_mode or the client character set, followed by
    more statements in the same text, leaves those read under settings the gateway cannot
    know when it judges the text."""
    cls = decision.classification
    if cls is None or len(cls.statements) < 2:
        return False
    return any(_changes_reading(s) for s in cls.statements[:-1])


def may_run_unseen(decision: Decision) -> bool:
    """Could this statement run code the gateway did not read (a routine, a view's function, a
    trigger, dynamic SQL), which might change settings where the server does not report it?"""
    cls = decision.classification
    if cls is None:
        return True
    for s in cls.statements:  # a plain loop: this runs for every query on the quick path
        if s.dynamic or s.functions or s.tables or s.kind not in _INERT:
            return True
    return False
