"""The gateway's log: `[gateway] log_level` and `log_format` ("text" or "json").

Text: one inert line per record. JSON: one object per line with `time` (ISO 8601, UTC),
`level`, `logger`, `message`, and the event's own fields (`event`, `user`, `rule`, ...) that
`hoop.server.event_log` attaches as `extra={"fields": ...}`, so collectors need no parsing of
the message. JSON escapes every control character, so a value cannot forge a line either.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

import orjson

from hoop.core.visible import inert_log_handler

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update({k: v for k, v in fields.items() if k not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(line, default=str).decode()
        except TypeError:  # text that is not UTF-8 (a lone surrogate): escaped, never dropped
            return json.dumps(line, default=str)


def setup_logging(level: str, log_format: str = "text") -> None:
    # Log lines quote user names, statements and servers' errors: they are written inert.
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLogFormatter())
    else:
        handler = inert_log_handler(sys.stderr, TEXT_FORMAT)
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    if level != "debug":  # asyncssh narrates every connection at INFO; our own log says what matters
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
