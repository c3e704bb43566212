"""Keyboard-interactive login through the OIDC device flow, with the real OpenSSH client in a
PTY against `hoop serve` and the test OIDC provider on loopback.

The user has no SSH key and no [[users]] entry: the gateway shows the provider's URL and
code, the test approves the code at the provider the way a person would (its /device page),
presses Enter, and the built-in session opens as that user with the provider's groups.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pty import Term
from oidc_provider import OIDCProvider
from support.gateway import GatewayProcess, write_config
from support.servers import free_port
from support.sshd import Sshd

SECRET = "CANARY-oidc-ssh-secret-51ac"


@pytest.fixture
def provider() -> Iterator[OIDCProvider]:
    with OIDCProvider(
        client_secret=SECRET, users={"olivia": ["dev"], "mallory": ["contractors"]}, auto_user="olivia"
    ) as p:
        minted: list[str] = []
        mint = p.mint

        def recording_mint(*args, **kwargs):  # type: ignore[no-untyped-def]
            token = mint(*args, **kwargs)
            minted.append(token)  # for the canary check: every ID token the provider issued
            return token

        p.mint = recording_mint  # type: ignore[method-assign]
        p.minted = minted  # type: ignore[attr-defined]
        yield p


@pytest.fixture
def gw(provider: OIDCProvider, sshd: Sshd, tmp_path: Path) -> Iterator[GatewayProcess]:
    body = f'''
[auth.oidc]
issuer = "{provider.issuer}"
client_id = "hoop"
client_secret = "${{HOOP_TEST_OIDC_SECRET}}"
jwks_min_refresh = 0

[[connections]]
name = "web1"
type = "ssh"
host = "127.0.0.1"
port = {sshd.port}
username = "root"
private_key = "{sshd.target_key}"
groups = ["dev"]
'''
    root = tmp_path / "gw"
    root.mkdir()
    gateway = write_config(root, body, listen={"ssh": free_port()})
    gateway.env["HOOP_TEST_OIDC_SECRET"] = SECRET
    gateway.start()
    yield gateway
    gateway.stop()


def ssh_without_key(gw: GatewayProcess, user: str) -> Term:
    # Default LogLevel (INFO) so the client shows auth banners, as a person's ssh would.
    return Term(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(gw.ports["ssh"]),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "PreferredAuthentications=keyboard-interactive",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-t",
            f"{user}@127.0.0.1",
        ]
    )


def approve_shown_code(t: Term, provider: OIDCProvider, deny: bool = False, as_user: str | None = None) -> str:
    """Read the URL and code off the client's screen and approve them at the provider."""
    url = t.expect(r"open\s+(http://127\.0\.0\.1:\d+/\S*)").group(1)
    assert url.startswith(provider.issuer)
    code = t.expect(r"code\s+([A-Z0-9-]+)").group(1)
    t.expect(r"press Enter here")
    if deny or as_user:
        assert provider.approve(code, user=as_user, deny=deny)
    else:
        with urllib.request.urlopen(f"{provider.issuer}/device?user_code={code}", timeout=5) as resp:
            assert resp.status == 200
    t.send("\r")
    return code


def test_device_flow_opens_the_builtin_session(gw: GatewayProcess, provider: OIDCProvider) -> None:
    t = ssh_without_key(gw, "olivia")
    try:
        approve_shown_code(t, provider)
        t.expect(r"hoop olivia> ", timeout=30)
        t.send("whoami\r")
        t.expect(r"user: olivia")
        t.expect(r"groups: dev")
        t.send("list\r")
        t.expect(r"web1\s+ssh\s+reachable")
        t.send("exit\r")
        assert t.wait() == 0
    finally:
        t.close()
    audit = json.dumps(gw.audit("--action", "login.success", until=bool))
    assert '"olivia"' in audit and '"oidc"' in audit
    # Canary: no ID token the provider issued, nor the client secret, is in any gateway file.
    gw.stop()
    blobs = b"".join(p.read_bytes() for p in gw.root.rglob("*") if p.is_file() and p.name != "hoop.toml")
    assert provider.minted  # type: ignore[attr-defined]
    for secret in [*provider.minted, SECRET]:  # type: ignore[attr-defined]
        assert secret.encode() not in blobs
        assert secret not in t.text


def test_denied_at_the_provider_is_refused_with_the_reason(gw: GatewayProcess, provider: OIDCProvider) -> None:
    t = ssh_without_key(gw, "olivia")
    try:
        approve_shown_code(t, provider, deny=True)
        t.expect(r"login refused: the login was denied at the identity provider", timeout=30)
        t.expect(r"Permission denied")
        assert t.wait() == 255
        assert "hoop olivia>" not in t.text
    finally:
        t.close()
    failures = json.dumps(gw.audit("--action", "login.failure", until=bool))
    assert "denied at the identity provider" in failures


def test_approval_as_another_user_does_not_log_in(gw: GatewayProcess, provider: OIDCProvider) -> None:
    """mallory approving the code shown to someone logging in as olivia gets nobody in."""
    t = ssh_without_key(gw, "olivia")
    try:
        approve_shown_code(t, provider, as_user="mallory")
        t.expect(r"login refused: token is for user 'mallory', not 'olivia'", timeout=30)
        assert t.wait() == 255
        assert re.search(r"hoop \w+>", t.text) is None
    finally:
        t.close()
