"""Durations Hoop reads from people: token lifetimes, grants, hold timeouts.

Every one is finite and bounded. `float()` reads "inf", "nan" and "1e309" (TOML and JSON carry
them too); an infinite token lifetime or grant never expires, a NaN compares false with every
clock reading (so `expires <= now` never holds), and an absurdly long one is "never" in all
but name. So a duration must be a positive, finite number of seconds no longer than its
maximum; anything else is refused with the reason, never clipped to fit.
"""

from __future__ import annotations

import math

# No duration Hoop accepts is longer than this, whatever a setting says.
MAX_DURATION = 366 * 86400.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def format_span(seconds: float) -> str:
    """30d, 8h, 5m, 90s: the largest unit that divides the value, for messages."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def bounded(seconds: object, maximum: float = MAX_DURATION, *, what: str = "duration", limit: str = "") -> float:
    """`seconds` as a float when it is a positive, finite number no longer than `maximum`;
    otherwise ValueError saying why (`limit` names the setting that sets the maximum)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, got {seconds!r}")
    value = float(seconds)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, got {seconds!r}")
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {seconds!r}")
    if value > maximum:
        where = f" ({limit})" if limit else ""
        raise ValueError(f"{what} of {format_span(value)} is longer than the maximum of {format_span(maximum)}{where}")
    return value


def parse_duration_text(text: str) -> float:
    """'8h', '30m', '90s', '2d' or plain seconds -> seconds (not yet bounded)."""
    text = text.strip().lower()
    try:
        if text and text[-1] in UNITS:
            return float(text[:-1]) * UNITS[text[-1]]
        return float(text)
    except ValueError:
        raise ValueError(f"expected a duration like 30s, 5m, 8h or 2d, got {text!r}") from None
