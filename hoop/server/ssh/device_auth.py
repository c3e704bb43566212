"""Keyboard-interactive login through the OIDC device flow, for users who have no SSH key.

When `[auth.oidc]` is configured, `ssh alice@gateway` without a key gets one prompt that
carries the provider's verification URL and the user code. The user opens the URL (on any
device), approves, and presses Enter; the gateway then waits for the provider to release the
ID token and checks it exactly like a token given as the password
(`services.authenticate(user, id_token, door="ssh")`), so user name, groups, expiry and
audience rules are the same at every door.

Everything is in the prompt text itself because OpenSSH prints keyboard-interactive
instructions and auth banners only at LogLevel INFO or above, while prompts always show.
The ID token never leaves the gateway and is never logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hoop.core.errors import AuthError, HoopError
from hoop.core.identity import Identity

if TYPE_CHECKING:
    import asyncssh

    from hoop.core.oidc_login import DeviceLogin
    from hoop.server.services import Services

log = logging.getLogger("hoop.ssh")
WAIT_FOR_PROVIDER = 110.0  # seconds after Enter; the server's login_timeout is longer
LOGIN_TIMEOUT = 180.0  # asyncssh login_timeout when the device flow is on (sshd: 120 s)


def device_prompt(uri: str, complete: str | None, code: str) -> str:
    lines = ["", "Log in with your identity provider:", f"  open   {uri}", f"  code   {code}"]
    if complete:
        lines.append(f"  (or open {complete})")
    lines.append("Then press Enter here; the gateway waits for the provider to confirm: ")
    return "\r\n".join(lines)


class DeviceAuth:
    """One device login per SSH connection: `challenge()` then `finish(responses)`."""

    def __init__(self, services: Services, user: str, client: str) -> None:
        self.services = services
        self.user = user
        self.client = client
        self.pending: DeviceLogin | None = None

    async def challenge(self) -> tuple[str, str, str, list[tuple[str, bool]]] | bool:
        """The keyboard-interactive challenge, or False when the provider cannot start a login."""
        from hoop.core.oidc_login import start_device_login

        oidc = self.services.config.oidc
        assert oidc is not None  # keyboard-interactive is offered only with [auth.oidc]
        try:
            p = self.pending = await start_device_login(oidc)
        except (HoopError, OSError) as exc:
            self._failed(f"device authorization failed: {exc}")
            return False
        prompt = device_prompt(p.verification_uri, p.verification_uri_complete, p.user_code)
        return "Hoop login", "", "", [(prompt, True)]

    async def finish(self, conn: asyncssh.SSHServerConnection | None) -> Identity | None:
        """Wait for the provider, then check the ID token; None (after telling why) if refused."""
        if self.pending is None:
            return None
        pending, self.pending = self.pending, None
        try:
            id_token = await pending.wait(WAIT_FOR_PROVIDER)
        except TimeoutError:
            self._refused(conn, "the login was not approved in time")
            return None
        except (HoopError, OSError) as exc:
            self._refused(conn, str(exc))
            return None
        try:
            return await self.services.authenticate(self.user, id_token, door="ssh", client=self.client)
        except AuthError as exc:  # authenticate() has audited the failure with its reason
            self._banner(conn, f"hoop: login refused: {exc}")
            return None

    def _refused(self, conn: asyncssh.SSHServerConnection | None, reason: str) -> None:
        self._failed(reason)
        self._banner(conn, f"hoop: login refused: {reason}")

    def _failed(self, reason: str) -> None:
        self.services.journal.audit(
            self.user, "login.failure", "ssh", client=self.client, method="oidc-device", reason=reason
        )

    @staticmethod
    def _banner(conn: asyncssh.SSHServerConnection | None, text: str) -> None:
        """Shown by OpenSSH at its default LogLevel (INFO) before "Permission denied"."""
        try:
            if conn is not None:
                conn.send_auth_banner(text + "\r\n")
        except Exception:  # the client may already be gone; the audit has the reason
            log.debug("could not send the auth banner", exc_info=True)
