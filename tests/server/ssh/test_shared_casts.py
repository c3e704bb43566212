"""A terminal session on a gateway sharing a PostgreSQL store: its cast goes to the store,
and another gateway's configuration replays it and verifies its seals. The gateway's own
lobby is the terminal session: the real `ssh` client, no sshd."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pty import Term
from support.gateway import ALICE, write_config
from support.pgstore import store_database
from support.servers import free_port

SSH_OPTIONS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
PASSWORD_ONLY = ["-o", "LogLevel=ERROR", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"]


@pytest.fixture
def dsn() -> Iterator[str]:
    with store_database() as dsn:
        yield dsn


def test_a_terminal_session_replays_and_verifies_through_another_gateway(tmp_path: Path, dsn: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_config(tmp_path / "a", ALICE, listen={"ssh": free_port()}, settings=f'store = "{dsn}"\nname = "a"\n')
    b = write_config(tmp_path / "b", ALICE, settings=f'store = "{dsn}"\nname = "b"\n')
    a.start()
    try:
        token = a.token("alice")
        t = Term(["ssh", "-t", "-p", str(a.ports["ssh"]), *SSH_OPTIONS, *PASSWORD_ONLY, "alice@127.0.0.1"])
        try:
            t.expect(r"password:")
            t.send(token + "\r")
            t.expect(r"hoop alice> ")
            t.send("whoami\r")
            t.expect(r"user: alice")
            t.send("exit\r")
            assert t.wait() == 0
        finally:
            t.close()
    finally:
        a.stop()
    assert not list((tmp_path / "a" / "recordings").glob("*.cast"))  # in the store only

    replay = b.cli("replay", "1", "--text")
    assert "user: alice" in replay.stdout
    result = b.cli("audit", "verify", "--recordings")
    assert "recordings: 3 sealed files match their digests" in result.stdout, result.stdout + result.stderr


def test_a_store_moved_to_postgresql_keeps_its_sealed_recordings_verifiable(tmp_path: Path, dsn: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_config(tmp_path / "a", ALICE, listen={"ssh": free_port()})  # SQLite, recordings as files
    b = write_config(tmp_path / "b", ALICE, settings=f'store = "{dsn}"\nname = "b"\n')
    a.start()
    try:
        token = a.token("alice")
        t = Term(["ssh", "-t", "-p", str(a.ports["ssh"]), *SSH_OPTIONS, *PASSWORD_ONLY, "alice@127.0.0.1"])
        try:
            t.expect(r"password:")
            t.send(token + "\r")
            t.expect(r"hoop alice> ")
            t.send("whoami\r")
            t.expect(r"user: alice")
            t.send("exit\r")
            assert t.wait() == 0
        finally:
            t.close()
    finally:
        a.stop()

    moved = a.cli("migrate", "--to", dsn)
    assert "recordings: 3 files" in moved.stdout and "audit chain verified on the target" in moved.stdout
    shutil.rmtree(tmp_path / "a" / "recordings")  # the files the seals name are gone: only copies remain
    assert "user: alice" in b.cli("replay", "1", "--text").stdout
    result = b.cli("audit", "verify", "--recordings")
    assert "recordings: 3 sealed files match their digests" in result.stdout, result.stdout + result.stderr

    (tmp_path / "c").mkdir()  # and back to SQLite: chunks become files in its recordings_dir
    c = write_config(tmp_path / "c", ALICE)
    back = b.cli(
        "migrate",
        "--to",
        str(tmp_path / "c" / "data" / "hoop.db"),
        "--to-recordings",
        str(tmp_path / "c" / "recordings"),
    )
    assert "recordings: 3 files" in back.stdout
    assert "user: alice" in c.cli("replay", "1", "--text").stdout
    result = c.cli("audit", "verify", "--recordings")
    assert "recordings: 3 sealed files match their digests" in result.stdout, result.stdout + result.stderr
