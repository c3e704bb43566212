"""A terminal session's recordings (its cast and keyframes beside the statement recording)
are sealed into the audit chain when it ends, and `hoop audit verify --recordings` checks
them. The gateway's own lobby is the terminal session: the real `ssh` client, no sshd."""

from __future__ import annotations

import json
from pathlib import Path

from _pty import Term
from support.gateway import ALICE, write_config
from support.servers import free_port

SSH_OPTIONS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
PASSWORD_ONLY = ["-o", "LogLevel=ERROR", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"]


def test_terminal_recordings_are_sealed_and_checked(tmp_path: Path) -> None:
    gw = write_config(tmp_path, ALICE, listen={"ssh": free_port()})
    gw.start()
    try:
        token = gw.token("alice")
        t = Term(["ssh", "-t", "-p", str(gw.ports["ssh"]), *SSH_OPTIONS, *PASSWORD_ONLY, "alice@127.0.0.1"])
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
        gw.stop()

    out = gw.cli("audit", "--json", "--action", "recording.sealed").stdout
    seals = {Path(e["detail"]["path"]).name: e["detail"] for e in json.loads(out)}
    assert {"1.cast", "1.keyframes.jsonl", "1.hoop.jsonl"} <= set(seals), seals
    for seal in seals.values():
        assert Path(seal["path"]).stat().st_size == seal["bytes"]
    result = gw.cli("audit", "verify", "--recordings")
    assert f"recordings: {len(seals)} sealed files match their digests" in result.stdout

    cast = Path(seals["1.cast"]["path"])
    cast.write_text(cast.read_text().replace("user: alice", "user: mallo"))
    result = gw.cli("audit", "verify", "--recordings", check=False)
    assert result.returncode == 1 and f"RECORDING {cast} (session 1): changed since it was sealed" in result.stderr
