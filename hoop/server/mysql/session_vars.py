"""The session settings that decide how a MySQL / MariaDB server reads statement text, as the
server itself reports them.

The gateway must read every statement the way the server will (hoop.core.sql.textmode): the
client character set (gbk, big5, sjis and cp932 characters can end in the backslash byte) and
sql_mode (NO_BACKSLASH_ESCAPES, ANSI_QUOTES). Guessing them from statement text would miss
every change made where the gateway cannot see it (a procedure, dynamic SQL, a reset). So
the gateway asks the server to report them: upstream always speaks CLIENT_SESSION_TRACK, and
`TRACK_SQL` (sent at login, after COM_RESET_CONNECTION and after anything that runs code the
gateway did not read: CALL, EXECUTE) puts character_set_client and sql_mode into
session_track_system_variables and assigns both to themselves, so that very OK packet carries
their current values. Every later change comes back in the OK packet of the command that made
it. Clients that did not ask for session tracking get the OK packets without the tracking data
(`for_client`).

A session must not switch the tracking off: text naming session_track_system_variables is
refused (`touches_tracking`). Code the gateway did not read can still do it (a routine made
upstream, dynamic SQL): after such code, text that depends on the settings waits until the
server has reported them again (text_settings.py). Should the server refuse to report them,
the settings are unknown (`Settings.blind`) and statement text is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from hoop.core.sql.textmode import TextMode, mysql_mode, unsupported_sql_mode
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p

TRACKED = ("character_set_client", "sql_mode")
# The global default list is kept (clients that track autocommit etc. keep their reports).
TRACK_SQL = (
    "SET SESSION session_track_system_variables = CONCAT_WS(',', "
    "NULLIF(@@global.session_track_system_variables, ''), "
    "'character_set_client,sql_mode,session_track_system_variables'), "
    "character_set_client = @@session.character_set_client, sql_mode = @@session.sql_mode"
)
SYSTEM_VARIABLES = 0  # session state entry type: SESSION_TRACK_SYSTEM_VARIABLES
SCHEMA = 1  # session state entry type: SESSION_TRACK_SCHEMA (COM_INIT_DB, USE)


def touches_tracking(raw: bytes | memoryview) -> bool:
    """Text that names session_track_system_variables (or session tracking at all): refused, since
    switching the reports off would leave the gateway reading text under settings it no longer
    knows. ASCII case-insensitive, as the server reads names."""
    data = bytes(raw) if isinstance(raw, memoryview) else raw
    return b"_" in data and b"session_track" in data.lower()


def parse_state(block: bytes) -> dict[str, str]:
    """The system variables (name -> value) reported in an OK packet's session state block."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(block):
        kind = block[pos]
        data, pos = c.read_lenenc_str(block, pos + 1)
        if kind == SYSTEM_VARIABLES and data:
            name, at = c.read_lenenc_str(data, 0)
            value, _ = c.read_lenenc_str(data, at)
            out[(name or b"").decode("ascii", "replace").lower()] = (value or b"").decode("utf-8", "replace")
    return out


def reported_schema(block: bytes) -> str | None:
    """The current database an OK packet's session state block reports, if it reports one."""
    pos, found = 0, None
    while pos < len(block):
        kind = block[pos]
        data, pos = c.read_lenenc_str(block, pos + 1)
        if kind == SCHEMA and data is not None:
            name, _ = c.read_lenenc_str(data, 0)
            found = (name or b"").decode("utf-8", "replace")
    return found


def for_client(ok: p.OkPacket, payload: bytes, client_caps: int) -> bytes | None:
    """The OK packet a client without CLIENT_SESSION_TRACK expects, or None when the server's
    bytes already read the same (no info text and no state change: both layouts agree)."""
    if client_caps & c.CLIENT_SESSION_TRACK or not (ok.info or ok.status & c.SERVER_SESSION_STATE_CHANGED):
        return None
    plain = p.OkPacket(
        ok.affected_rows,
        ok.last_insert_id,
        ok.status & ~c.SERVER_SESSION_STATE_CHANGED,
        ok.warnings,
        ok.info,
        None,
        payload[0],
    )
    return p.build_ok(plain, client_caps)


class SettingsError(Exception):
    """The session is under settings the gateway cannot read text in (message names them)."""


@dataclass
class Settings:
    """character_set_client and sql_mode as the server last reported them, and the TextMode."""

    charset: str = ""
    sql_mode: str = ""
    mode: TextMode | None = None  # None until the server reported both
    blind: str = ""  # why the gateway no longer knows the settings ("" while it does)
    server_version: int = 0  # from the handshake: which versioned comments the server runs
    mariadb: bool = False

    def update(self, changes: dict[str, str]) -> bool:
        """Take the server's report; True when it says the reports of our variables stopped
        (the relay then asks again before it reads text that depends on them)."""
        lost = False
        if "session_track_system_variables" in changes:
            listed = {v.strip().lower() for v in changes["session_track_system_variables"].split(",")}
            lost = "*" not in listed and not set(TRACKED) <= listed
        if any(k in changes for k in TRACKED):
            self.charset = changes.get("character_set_client", self.charset)
            self.sql_mode = changes.get("sql_mode", self.sql_mode)
            if self.charset:
                self.mode = mysql_mode(self.charset, self.sql_mode, self.server_version, self.mariadb)
        return lost

    def check(self) -> TextMode:
        """The TextMode to read text under; SettingsError where the gateway cannot."""
        if self.blind:
            raise SettingsError(f"Hoop no longer knows how the server reads text: {self.blind}; reconnect")
        if self.mode is None:
            raise SettingsError("the server did not report character_set_client and sql_mode (session tracking)")
        bad = unsupported_sql_mode(self.sql_mode)
        if bad:
            raise SettingsError(
                f"Hoop cannot read statements under sql_mode {bad}; only SET sql_mode = '...' "
                "(a list of other modes) or DEFAULT runs until it is gone"
            )
        return self.mode

    def login_problem(self) -> tuple[int, str, str] | None:
        """Why a session under these settings cannot start, as (code, SQLSTATE, message), or None."""
        try:
            mode = self.check()
        except SettingsError as exc:
            return 1235, "42000", str(exc)  # ER_NOT_SUPPORTED_YET
        if not mode.codec:  # ER_UNKNOWN_CHARACTER_SET
            return (
                1115,
                "42000",
                f"Hoop cannot read text in the client character set {mode.charset}; connect with utf8mb4",
            )
        return None
