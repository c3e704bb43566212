"""`pty_max_cols` / `pty_max_rows`: how large a terminal a client may have.

A terminal is emulated on the event loop (the recording's screen, see hoop/core/terminal.py),
so its size is work every other session waits for: a 3000x3000 request stalled unrelated
logins for seconds. A `pty-req` over the limit is refused (the client says "PTY allocation
request failed"); a window change cannot be refused in SSH, so it is clamped to the limit.
"""

from __future__ import annotations

from typing import Any

from hoop.core.limits import Limits


def too_large(limits: Limits, size: tuple[int, ...]) -> bool:
    return size[0] > limits.pty_max_cols or size[1] > limits.pty_max_rows


def refuse_pty(server: Any, chan: Any, size: tuple[int, ...]) -> bool:
    """True (audited, and told to the client) when a pty-req asks for too large a terminal."""
    limits: Limits = server.services.config.limits
    if not too_large(limits, size):
        return False
    most = f"{limits.pty_max_cols}x{limits.pty_max_rows}"
    server.services.journal.audit(
        server.user, "ssh.refused.pty", "-", client=server.client, cols=size[0], rows=size[1], limit=most
    )
    if chan is not None:
        chan.write_stderr(
            f"hoop: a {size[0]}x{size[1]} terminal is larger than this gateway allows ({most})\r\n".encode()
        )
    return True


def clamped(limits: Limits, width: int, height: int) -> tuple[int, int]:
    return min(width, limits.pty_max_cols), min(height, limits.pty_max_rows)
