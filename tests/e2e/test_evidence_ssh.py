"""SSH under a full recordings disk: a shell streams output as it is recorded, so when the
recording cannot be written the session ends with the reason, new logins are refused, and
both come back once the disk has room, without a restart."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.disk import fill, small_disk
from support.doors import Ssh, uniform_gateway
from support.mariadb import throwaway_database
from support.sshd import Sshd, keygen, throwaway_sshd
from support.waiting import eventually

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_mariadb, pytest.mark.needs_sshd]
UNAVAILABLE = "recording unavailable"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with throwaway_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def test_a_shell_ends_when_its_recording_cannot_be_written(
    sshd: Sshd, pg_target: dict[str, str], tmp_path: Path
) -> None:
    key = tmp_path / "alice"
    keygen(key)
    root = tmp_path / "gw"
    root.mkdir()
    with throwaway_database("evidence") as database, small_disk(tmp_path / "disk", "16m") as disk:
        (root / "recordings").symlink_to(disk)
        gw = uniform_gateway(root, key.with_suffix(".pub").read_text().strip(), pg_target, database, sshd)
        gw.start()
        try:
            door = Ssh(gw, key)
            shell = subprocess.Popen(
                door.argv("-tt", "alice+web@127.0.0.1"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert shell.stdin is not None
            shell.stdin.write(b"echo shell-started\n")
            shell.stdin.flush()
            time.sleep(1.0)
            filler = fill(disk)
            deadline = time.monotonic() + 20
            while shell.poll() is None and time.monotonic() < deadline:
                try:
                    shell.stdin.write(b"seq 1 2000\n")  # output to record
                    shell.stdin.flush()
                except BrokenPipeError:
                    break
                time.sleep(0.2)
            output, _ = shell.communicate(timeout=10)
            assert shell.returncode is not None
            assert UNAVAILABLE.encode() in output, output[-2000:]
            refused = door.ask("echo refused")
            assert not refused.ok

            filler.unlink()
            eventually(lambda: _ran(door.ask("echo back")), timeout=20)
        finally:
            gw.stop()


def _ran(answer: object) -> None:
    assert getattr(answer, "ok", False), answer
