"""Drive a real client through a pseudo-terminal: send keys, wait for text on its screen."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Term:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cols: int = 100, rows: int = 30) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, preexec_fn=controlling_tty
        )
        os.close(slave)
        self.fd = master
        self.raw = b""
        self.pos = 0  # expect() searches the clean text after this point

    def send(self, text: str | bytes) -> None:
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        self.raw += data
        return bool(data)

    @property
    def text(self) -> str:
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace").replace("\r", "")

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen so far:\n{self.text[-2000:]}")
            if not self._read(0.2) and self.proc.poll() is not None:
                self._read(0.2)
                if not rx.search(self.text, self.pos):
                    tail = self.text[-2000:]
                    raise AssertionError(f"client exited ({self.proc.returncode}) before {pattern!r}:\n{tail}")

    def wait(self, timeout: float = 15.0) -> int:
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._read(0.1)
        while self._read(0.05):
            pass
        return self.proc.wait(max(0.1, deadline - time.time()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fd)
