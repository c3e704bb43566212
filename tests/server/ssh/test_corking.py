"""CorkedTransport: what one loop turn writes reaches the real transport as one write, in
order, and nothing written before close() is lost. (Every SSH test in this folder also runs
through it: the SSH door wraps each client connection.)"""

from __future__ import annotations

import asyncio
from typing import Any

from hoop.server.ssh.corking import FLUSH_AT, CorkedTransport


class Recorder:
    """The write side of a transport, keeping each write call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = self.eof = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0


def run(scenario: Any) -> Recorder:
    recorder = Recorder()

    async def main() -> None:
        await scenario(CorkedTransport(recorder), recorder)

    asyncio.run(main())
    return recorder


def test_one_write_per_loop_turn_in_order() -> None:
    async def scenario(t: CorkedTransport, r: Recorder) -> None:
        t.write(b"ignore-packet")
        t.write(b"data-packet")
        assert r.writes == [] and t.get_write_buffer_size() == len(b"ignore-packetdata-packet")
        await asyncio.sleep(0)
        t.write(b"next turn")
        await asyncio.sleep(0)

    assert run(scenario).writes == [b"ignore-packetdata-packet", b"next turn"]


def test_a_large_turn_is_sent_without_waiting() -> None:
    async def scenario(t: CorkedTransport, r: Recorder) -> None:
        t.write(b"a" * (FLUSH_AT - 1))
        t.write(b"b")
        assert [len(w) for w in r.writes] == [FLUSH_AT]
        await asyncio.sleep(0)

    assert len(run(scenario).writes) == 1


def test_close_and_eof_send_what_is_held_and_abort_drops_it() -> None:
    async def scenario(t: CorkedTransport, r: Recorder) -> None:
        t.write(b"last words")
        t.write_eof()
        assert r.writes == [b"last words"] and r.eof
        t.write(b"goodbye")
        t.close()
        assert r.writes[-1] == b"goodbye" and r.closed

    assert run(scenario).writes == [b"last words", b"goodbye"]

    async def aborted(t: CorkedTransport, r: Recorder) -> None:
        t.write(b"never sent")
        t.abort()
        await asyncio.sleep(0)

    r = run(aborted)
    assert r.writes == [] and r.aborted
