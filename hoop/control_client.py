"""Talk to the running gateway's control endpoint (used by the CLI and the TUI).

Kept outside `hoop.server` so clients never import the gateway itself.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from hoop.core.errors import HoopError


class GatewayUnavailable(HoopError):
    pass


class ControlError(HoopError):
    pass


NO_TOKEN = "no token: pass --token, set HOOP_TOKEN or run `hoop login`"


def token_from(args_token: str | None, oidc: Any = None) -> str:
    """The caller's credential: --token, else $HOOP_TOKEN, else (with [auth.oidc]) the ID token
    `hoop login` stored (renewed when it is about to expire)."""
    token = args_token or os.environ.get("HOOP_TOKEN", "")
    if not token and oidc is not None:
        from hoop.core.oidc_login import LoginRequired, current_credential

        try:
            token = current_credential(oidc).id_token
        except LoginRequired:
            token = ""
    if not token:
        raise HoopError(NO_TOKEN)
    return token


def caller_client(path: Path, args_token: str | None, oidc: Any = None) -> ControlClient:
    """A client of the control endpoint at `path` acting as the caller (see token_from)."""
    return ControlClient(path, token_from(args_token, oidc))


class ControlClient:
    def __init__(self, path: Path, token: str, timeout: float = 10.0) -> None:
        self.path = path
        self.token = token
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise GatewayUnavailable(
                f"the gateway is not running (no control socket at {self.path}); live actions are unavailable"
            ) from None
        self._sock, self._file = sock, sock.makefile("rwb")

    def call(self, op: str, **params: Any) -> Any:
        if self._sock is None:
            self._connect()
        request = {"op": op, "token": self.token, **params}
        try:
            self._file.write(json.dumps(request).encode() + b"\n")
            self._file.flush()
            line = self._file.readline()
        except OSError as exc:
            self.close()
            raise GatewayUnavailable(f"lost the connection to the gateway: {exc}") from None
        if not line:
            self.close()
            raise GatewayUnavailable("the gateway closed the control connection")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "request failed"))
        return reply.get("result")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None
