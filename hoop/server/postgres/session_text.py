"""Reading a PostgreSQL session's statement text under the settings the server reads it with.

The server converts a Query or Parse message from `client_encoding` when it receives it, and
scans the text under `standard_conforming_strings` as it is then. Both can change during a
session (SET, set_config, a function or trigger that calls it, a rolled-back transaction),
and the server tells the client every new value in a ParameterStatus message before the next
ReadyForQuery. So the gateway follows the server's reports, never the statements' text:
`SessionText.mode` is what the server reported last.

That report comes late for a client that pipelines: a message sent while an earlier one is
still running may be read under settings the earlier one changes. Text that reads the same
under every supported setting (ASCII without a backslash: nearly all SQL) is judged at once.
Other text is judged only once the settings are settled: the relay waits for the server to
answer what was sent before it, or, inside one extended-protocol batch, where that answer
comes only after Sync, asks the server for the settings in the middle of the pipeline
(text_probe.py).
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from hoop.core.sql.textmode import TextMode, TextModeError, postgres_mode

# The ParameterStatus names that decide how text is read.
_TRACKED = ("client_encoding", "standard_conforming_strings", "server_encoding")


class Settle(Enum):
    """Returned by `read`: judge this message once the earlier ones are answered."""

    SETTLE = "settle"


SETTLE = Settle.SETTLE


class SessionText:
    __slots__ = ("params", "mode", "executing", "refusal")

    def __init__(self, parameters: dict[str, str]) -> None:
        self.params = {k: parameters.get(k, "") for k in _TRACKED}
        self.mode = self._mode()
        self.executing = False  # an Execute went upstream in the batch the client has not synced
        self.refusal = ""  # set by the relay: refuse the next message that waits, with this reason

    def _mode(self) -> TextMode:
        p = self.params
        return postgres_mode(
            p["client_encoding"] or "UTF8", p["standard_conforming_strings"] or "on", p["server_encoding"] or "UTF8"
        )

    def parameter_status(self, name: str, value: str) -> None:
        if name in self.params and self.params[name] != value:
            self.params[name] = value
            self.mode = self._mode()

    def unreadable(self) -> str:
        """Why no text in this session's character set can be read ('' when it can)."""
        return "" if self.mode.codec else f"the client character set {self.mode.charset} is not supported by Hoop"

    def read(self, raw: bytes, settled: bool) -> str | Literal[Settle.SETTLE]:
        """The text as the server will read it; SETTLE to wait until the settings are known.
        Raises TextModeError where the gateway cannot read it as the server will."""
        if not settled and TextMode.depends_on_settings(raw):
            if self.refusal:  # the relay could not learn the settings in time (text_probe.py)
                why, self.refusal = self.refusal, ""
                raise TextModeError(why, "55000")
            return SETTLE
        self.refusal = ""
        return self.mode.decode(raw)
