"""`[limits]` at the SSH door: sessions per user on a target (each exec, shell or sftp channel
counts, and one over the limit is refused before the target is contacted), the back-off after
failed password logins, and terminal sizes (a huge terminal must not stall other logins)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from support.gateway import GatewayProcess, has_actions, users_toml, write_config
from support.servers import free_port
from support.sshd import Sshd, keygen, ssh_connection_toml

LIMITS = """
[limits]
sessions_per_user = 2
login_failures_per_user = 3
recording_bytes_per_session = 300000
"""


@pytest.fixture
def gw(sshd: Sshd, tmp_path: Path) -> Iterator[GatewayProcess]:
    alice_pub = keygen(tmp_path / "alice_key")
    body = f'\n[[users]]\nname = "alice"\ngroups = ["dev"]\nssh_keys = ["{alice_pub}"]\n'
    body += users_toml({"bob": ["dev"]}) + ssh_connection_toml("web", sshd) + LIMITS
    gateway = write_config(tmp_path, body, listen={"ssh": free_port()})
    gateway.start()
    gateway.tokens["bob"] = gateway.token("bob")
    yield gateway
    gateway.stop()


def _connect(gw: GatewayProcess, user: str, **auth: Any) -> Any:
    if not auth:
        auth = {"client_keys": [str(gw.root / "alice_key")]}
    return asyncssh.connect(
        "127.0.0.1", gw.ports["ssh"], username=user, known_hosts=None, preferred_auth="publickey,password", **auth
    )


def test_sessions_on_a_target_are_limited_per_user(gw: GatewayProcess) -> None:
    async def scenario() -> None:
        async with _connect(gw, "alice+web") as conn:
            first = await conn.create_process("sleep 30")
            second = await conn.create_process("sleep 30")
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.create_process("echo never")
            assert refused.value.reason == "too many sessions for alice on web (limit 2)"
            async with _connect(gw, "bob+web", password=gw.tokens["bob"]) as other:  # bob's are his own
                assert (await other.run("echo bob", check=True)).stdout == "bob\n"
            first.close()
            await first.wait_closed()
            await asyncio.sleep(0.2)
            assert (await conn.run("echo again", check=True)).stdout == "again\n"
            second.close()

    asyncio.run(scenario())
    events = gw.audit("--action", "session.refused", until=has_actions("session.refused"))
    assert events[0]["actor"] == "alice" and events[0]["target"] == "web"


def test_failed_password_logins_are_throttled_with_a_reason(gw: GatewayProcess) -> None:
    async def attempt(password: str) -> str:
        banners: list[str] = []

        class Client(asyncssh.SSHClient):
            def auth_banner_received(self, msg: str, lang: str) -> None:
                banners.append(msg)

        try:
            async with asyncssh.connect(
                "127.0.0.1",
                gw.ports["ssh"],
                username="bob",
                password=password,
                known_hosts=None,
                client_keys=None,
                preferred_auth="password",
                client_factory=Client,
            ) as conn:
                await conn.run("true")
                return "in"
        except asyncssh.PermissionDenied:
            return "denied " + "".join(banners)

    async def scenario() -> list[str]:
        return [await attempt(p) for p in ("wrong-1", "wrong-2", "wrong-3", gw.tokens["bob"])]

    outcomes = asyncio.run(scenario())
    assert outcomes[:3] == ["denied "] * 3
    assert outcomes[3].startswith("denied hoop: too many failed logins, retry in 1s"), outcomes
    time.sleep(1.1)
    assert asyncio.run(attempt(gw.tokens["bob"])) == "in"


def test_a_huge_terminal_is_refused_or_clamped_and_never_stalls_another_login(gw: GatewayProcess) -> None:
    async def scenario() -> float:
        async with _connect(gw, "alice+web") as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_process(term_type="xterm", term_size=(3000, 3000))
            shell = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.wait_for(shell.stdout.readuntil("# "), 10)  # the target's shell is there
            shell.change_terminal_size(3000, 3000)  # clamped: a window change cannot be refused
            for _ in range(5):
                shell.stdin.write("echo " + "x" * 2000 + "\r")
            await asyncio.sleep(0.3)
            started = time.monotonic()
            async with _connect(gw, "bob+web", password=gw.tokens["bob"]) as other:
                await other.run("true", check=True)
            took = time.monotonic() - started
            shell.stdin.write("stty size; exit\r")
            out = await asyncio.wait_for(shell.stdout.read(), 20)
            assert "500 1000" in out  # rows cols, as the target was told
            return took

    assert asyncio.run(scenario()) < 2.0
    events = gw.audit("--action", "ssh.refused.pty", until=has_actions("ssh.refused.pty"))
    assert events[0]["detail"]["cols"] == 3000 and events[0]["detail"]["limit"] == "1000x500"


def test_a_terminal_whose_recording_reaches_its_limit_is_ended(gw: GatewayProcess) -> None:
    async def scenario() -> tuple[Any, str]:
        async with _connect(gw, "alice+web") as conn:
            command = "head -c 600000 /dev/zero | tr '\\0' x; sleep 10; echo not-reached"
            proc = await conn.create_process(command, term_type="xterm", term_size=(80, 24))
            out = await asyncio.wait_for(proc.stdout.read(), 20)
            err = await proc.stderr.read()
            await proc.wait_closed()
            return proc.exit_status, out + err

    status, output = asyncio.run(scenario())
    assert status == 126 and "not-reached" not in output  # EXIT_NOT_RUN: the gateway ended it
    assert "recording reached its limit of 300000 bytes" in output
    gw.audit("--action", "session.recording_limit", until=has_actions("session.recording_limit"))
