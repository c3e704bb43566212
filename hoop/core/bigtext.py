"""Big statements: the size budget, the classifications the parse pool made, and the way to them.

A statement up to `INLINE_SIZE` characters is classified on the event loop as before (the
common case and every benchmark loop: a pool round trip would only add latency). A longer
one is classified by `ParsePool` first, while its session waits like a held statement;
the result is kept here, keyed by the exact text, so the pipeline then decides it on the loop
in a dictionary lookup, and so does every later check of the same text (a prepared
statement executed again, a rule change). A text over `max_statement_size` is refused
without being parsed at all.

What is kept is bounded by the total length of the texts (`KEEP_CHARS`): the newest entry
always stays, older ones go first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from hoop.core.parsepool import ParsePool, ParseRefused
from hoop.core.sql import Classification, TextMode, classify_shell

log = logging.getLogger("hoop.pipeline")

# Characters. Measured on this project's classifiers: the cost per character is ~0.7 µs
# (PostgreSQL, one INSERT) to ~13 µs (MySQL, many short statements), so 8 KiB is at most
# ~0.1 s on the loop; a pool round trip adds ~1 ms. Ordinary statements and benchmark loops
# are far below it.
INLINE_SIZE = 8 * 1024
KEEP_CHARS = 64 * 1024 * 1024
KEEP_ENTRIES = 256
Known = Classification | str  # a classification, or why the statement is refused


@dataclass(frozen=True)
class ParseLimits:
    """The `[gateway]` settings that bound what one statement may cost. The defaults let an
    ordinary big statement through (a 20 MiB value in one INSERT takes ~0.8 s of CPU to
    classify for PostgreSQL, ~2.8 s for MySQL) and stop the texts whose cost explodes (many
    statements or tokens: 2 MB of them can take 10-30 s)."""

    max_statement_size: int = 32 * 1024 * 1024  # characters of decoded text
    parse_timeout: float = 5.0  # CPU seconds of classification in a worker
    parse_workers: int = 2


class BigStatements:
    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self._known: OrderedDict[tuple[str, str, TextMode], Known] = OrderedDict()
        self._chars = 0
        self._pool: ParsePool | None = None

    def is_big(self, text: str) -> bool:
        """Past the inline size, or past the size budget (which then refuses it)."""
        return len(text) > INLINE_SIZE or len(text) > self.limits.max_statement_size

    def too_big(self, text: str) -> str | None:
        limit = self.limits.max_statement_size
        if len(text) <= limit:
            return None
        return (
            f"the statement is {len(text)} characters long, over the gateway's limit "
            f"gateway.max_statement_size = {limit}"
        )

    def deferred(self, text: str, dialect: str, mode: TextMode) -> bool:
        """True when `text` must be classified by the pool before it can be judged."""
        return (
            dialect != "shell"
            and INLINE_SIZE < len(text) <= self.limits.max_statement_size
            and (text, dialect, mode) not in self._known
        )

    def known(self, text: str, dialect: str, mode: TextMode) -> Known | None:
        key = (text, dialect, mode)
        found = self._known.get(key)
        if found is not None:
            self._known.move_to_end(key)
        return found

    async def classify_ahead(self, text: str, dialect: str, mode: TextMode) -> None:
        """Classify `text` in the pool and keep the outcome; never raises (a failure is kept
        as the reason to refuse it)."""
        if not self.deferred(text, dialect, mode):
            return
        if self._pool is None:
            self._pool = ParsePool(self.limits.parse_workers, self.limits.parse_timeout)
        outcome: Known
        try:
            outcome = await self._pool.classify(text, dialect, mode)
        except ParseRefused as exc:
            outcome = str(exc)
        except Exception as exc:  # fail closed: the statement is refused, the session goes on
            log.exception("classifying a big statement failed")
            outcome = f"the gateway could not classify this statement ({type(exc).__name__})"
        self._keep((text, dialect, mode), outcome)

    def classify_here(self, text: str, dialect: str, mode: TextMode) -> Known:
        """For a caller that cannot wait (the text was judged before but is no longer kept)."""
        from hoop.core.sql import _classify

        if dialect == "shell":
            outcome = classify_shell(text)
        else:
            outcome = _classify.__wrapped__(text, dialect, mode)  # not into the small-text cache
        self._keep((text, dialect, mode), outcome)
        return outcome

    def _keep(self, key: tuple[str, str, TextMode], outcome: Known) -> None:
        known = self._known
        if key in known:
            self._chars -= len(key[0])
        known[key] = outcome
        known.move_to_end(key)
        self._chars += len(key[0])
        while len(known) > 1 and (self._chars > KEEP_CHARS or len(known) > KEEP_ENTRIES):
            old, _ = known.popitem(last=False)
            self._chars -= len(old[0])

    def forget(self) -> None:
        self._known.clear()
        self._chars = 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
