"""The gateway's session channel: asyncssh's, plus an audit of refused agent and X11 requests.

asyncssh answers `auth-agent-req@openssh.com` and `x11-req` itself, before any session code
runs. This subclass asks the connection's policy first, so a refusal is audited like every
other one and agent forwarding is only granted where the connection enables it.
"""

from __future__ import annotations

from typing import Any

import asyncssh


class AuditedChannel(asyncssh.SSHServerChannel):  # type: ignore[type-arg]
    hoop_server: Any = None

    @classmethod
    def adopt(cls, chan: asyncssh.SSHServerChannel, server: Any) -> None:  # type: ignore[type-arg]
        """Give a channel asyncssh created this class's request handlers."""
        chan.__class__ = cls
        chan.hoop_server = server  # type: ignore[attr-defined]

    def _process_auth_agent_req_at_openssh_dot_com_request(self, packet: Any) -> Any:
        server = self.hoop_server
        if server is not None and not server.forwarding_allowed("allow_agent_forwarding"):
            packet.check_end()
            server.refuse("agent_forwarding")
            return False
        return super()._process_auth_agent_req_at_openssh_dot_com_request(packet)

    def _process_x11_req_request(self, packet: Any) -> Any:
        server = self.hoop_server
        if server is not None:
            # Relaying X11 channels back through the gateway is not implemented, so X11 is
            # refused even where a connection sets allow_x11; the audit says which case it was.
            allowed = server.forwarding_allowed("allow_x11")
            server.refuse("x11", reason="not supported by the gateway" if allowed else "not allowed")
        return False
