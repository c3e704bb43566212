"""Whether the reader of our output has gone away (`hoop audit | head -1`)."""

from __future__ import annotations

import select
from typing import TextIO


def reader_gone(stream: TextIO) -> bool:
    """True when `stream` is a pipe whose reading end is closed: poll reports an error on it.
    A terminal, a file or a pipe still read report none."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no descriptor (closed or replaced stream): nothing to write to
        return True
