"""The `[gateway]` and `[listen]` tables of hoop.toml: where the gateway keeps its state
(data_dir, the store), how it records, and which doors listen where."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hoop.core.config_table import Table, parse_address
from hoop.core.errors import ConfigError
from hoop.core.secrets import Secret


@dataclass(frozen=True)
class GatewaySettings:
    data_dir: Path
    recordings_dir: Path
    max_message_size: int = 64 * 1024 * 1024
    tls_cert: Path | None = None
    tls_key: Path | None = None
    builtin_rules: bool = True
    log_level: str = "info"
    # "text": one readable line per event; "json": one JSON object per line (time, level,
    # logger, message and the event's fields) for log collectors (hoop/core/log_format.py).
    log_format: str = "text"
    control_socket: Path | None = None
    # What one statement may cost (see hoop/core/bigtext.py): longer texts are refused unparsed,
    # and classification that needs more CPU seconds in a parse worker is refused, the worker replaced.
    max_statement_size: int = 32 * 1024 * 1024
    parse_timeout: float = 5.0
    parse_workers: int = 2
    # When records cannot be stored (disk full, read-only, I/O error): "refuse" new statements
    # and logins until they can (nothing is served unrecorded), or "continue" serving while the
    # records wait in memory (logged and audited as a choice the operator made).
    on_record_failure: str = "refuse"
    # Signed checkpoints of the audit chain (hoop/core/audit_anchor.py): every so many events or
    # seconds, appended to a file outside data_dir (None: `audit-checkpoints.jsonl` beside data_dir).
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_events: int = 1000
    audit_checkpoint_interval: float = 60.0
    # The longest lifetime of a token `hoop token issue` may give, and the longest grant an
    # approval may give: a longer one is refused, naming the maximum (hoop/core/durations.py).
    max_token_ttl: float = 30 * 86400.0
    max_grant: float = 8 * 3600.0
    # How long `hoop serve` lets open sessions finish after SIGTERM/SIGINT before it ends them.
    shutdown_grace: float = 30.0
    # Where sessions, approvals, rules, tokens and audit live: None, the SQLite file in data_dir
    # (one gateway); or a PostgreSQL DSN that several gateways share (README, "Scale-out").
    store: Secret | None = None
    # This gateway's name among those sharing a store: it marks the sessions it carries.
    name: str = ""
    # On a shared store: a gateway whose heartbeat (one a second) is older than this counts as
    # lost; the others end its sessions as interrupted and expire its pending approvals.
    heartbeat_timeout: float = 10.0

    @property
    def db_path(self) -> Path:
        return self.data_dir / "hoop.db"

    @property
    def store_target(self) -> Path | Secret:
        """What `open_store` opens: the shared PostgreSQL store, or the SQLite file."""
        return self.store if self.store is not None else self.db_path

    @property
    def checkpoint_file(self) -> Path:
        return self.audit_checkpoint_file or self.data_dir.parent / "audit-checkpoints.jsonl"

    @property
    def checkpoint_key(self) -> Path:
        return self.data_dir / "audit-checkpoint.key"

    @property
    def control_path(self) -> Path:
        return self.control_socket or (self.data_dir / "control.sock")


@dataclass(frozen=True)
class ListenSettings:
    postgres: tuple[str, int] | None = None
    mysql: tuple[str, int] | None = None
    ssh: tuple[str, int] | None = None
    # /healthz, /readyz and /metrics (hoop/server/http_status.py); not a door: no logins there.
    http: tuple[str, int] | None = None


def gateway_settings(data: Any, file: str, base: Path) -> GatewaySettings:
    t = Table(data, file, "gateway")
    data_dir = t.path("data_dir", base, ".hoop")
    recordings = t.path("recordings_dir", base, "recordings")
    settings = GatewaySettings(
        data_dir=data_dir,  # type: ignore[arg-type]
        recordings_dir=recordings,  # type: ignore[arg-type]
        max_message_size=t.int("max_message_size", 64 * 1024 * 1024, lo=1024, hi=1 << 30),
        tls_cert=t.path("tls_cert", base),
        tls_key=t.path("tls_key", base),
        builtin_rules=t.bool("builtin_rules", True),
        log_level=t.str("log_level", "info"),
        log_format=t.str("log_format", "text"),
        control_socket=t.path("control_socket", base),
        max_statement_size=t.int("max_statement_size", 32 * 1024 * 1024, lo=1024, hi=1 << 30),
        parse_timeout=t.float("parse_timeout", 5.0),
        parse_workers=t.int("parse_workers", 2, lo=1, hi=64),
        on_record_failure=t.str("on_record_failure", "refuse"),
        audit_checkpoint_file=t.path("audit_checkpoint_file", base),
        audit_checkpoint_events=t.int("audit_checkpoint_events", 1000, lo=1),
        audit_checkpoint_interval=t.float("audit_checkpoint_interval", 60.0),
        max_token_ttl=t.duration("max_token_ttl", 30 * 86400.0),
        max_grant=t.duration("max_grant", 8 * 3600.0),
        shutdown_grace=t.duration("shutdown_grace", 30.0, 24 * 3600.0),
        store=_store_dsn(t),
        name=t.str("name", socket.gethostname() or "gateway"),
        heartbeat_timeout=t.duration("heartbeat_timeout", 10.0, 3600.0),
    )
    if not _GATEWAY_NAME.fullmatch(settings.name):
        raise ConfigError(
            file, "gateway.name", f"expected 1-64 letters, digits, '.', '_' or '-', got {settings.name!r}"
        )
    # Heartbeats come once a second: a shorter timeout would call a gateway lost after one
    # late beat (a busy machine, a garbage collection).
    if settings.heartbeat_timeout < 3:
        raise ConfigError(
            file, "gateway.heartbeat_timeout", f"expected at least 3s, got {settings.heartbeat_timeout:g}s"
        )
    if settings.on_record_failure not in ("refuse", "continue"):
        raise ConfigError(file, "gateway.on_record_failure", "expected refuse or continue")
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(file, "gateway.log_level", "expected one of debug, info, warning, error")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(file, "gateway.log_format", f"expected text or json, got {settings.log_format!r}")
    if settings.max_token_ttl < 300:  # the SSH-hosted console's own token lives five minutes
        raise ConfigError(file, "gateway.max_token_ttl", f"expected at least 5m, got {settings.max_token_ttl:g}s")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError(file, "gateway.tls_cert", "tls_cert and tls_key must be set together")
    # A checkpoint stored with the chain it anchors is deleted with it.
    if settings.checkpoint_file.resolve().is_relative_to(settings.data_dir.resolve()):
        raise ConfigError(
            file,
            "gateway.audit_checkpoint_file",
            f"{settings.checkpoint_file} is inside data_dir ({settings.data_dir}); audit checkpoints must be kept "
            "outside the store they anchor",
        )
    t.done()
    return settings


_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _store_dsn(t: Table) -> Secret | None:
    """`store`: a postgresql:// DSN; its password from `${VAR}` or the whole DSN from `file:`."""
    raw = t.data.get("store")
    if raw is None:
        return None
    if isinstance(raw, str) and not raw.startswith("file:") and not raw.startswith(("postgresql://", "postgres://")):
        raise t.error(
            "store",
            "expected a postgresql:// DSN (leave store unset for the SQLite file in data_dir)",
        )
    return t.secret("store")


def listen_settings(data: Any, file: str) -> ListenSettings:
    t = Table(data, file, "listen")
    out: dict[str, tuple[str, int]] = {}
    for proto in ("postgres", "mysql", "ssh", "http"):
        value = t.str(proto)
        if value is not None:
            out[proto] = parse_address(value, file, f"listen.{proto}")
    t.done()
    return ListenSettings(**out)
