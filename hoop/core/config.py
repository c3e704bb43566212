"""One typed schema for hoop.toml.

Every table is read by a small function that pops the keys it knows and rejects whatever is
left, so a typo (`pasword = ...`) stops the gateway at start instead of silently doing nothing.
Errors name the file, the dotted key and what was expected.
"""

from __future__ import annotations

import builtins
import math
import os
import re
import socket
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, overload

from hoop.core.durations import MAX_DURATION, bounded, parse_duration_text
from hoop.core.errors import ConfigError
from hoop.core.limits import Limits, limits_from_mapping
from hoop.core.notify_config import NotifyTarget, notify_from_list
from hoop.core.roles import RolesConfig, roles_from_mapping
from hoop.core.secrets import DeferredSecret, Secret, resolve_secret

DEFAULT_CONFIG = "hoop.toml"
CONNECTION_TYPES = ("postgres", "mysql", "ssh")
SSLMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
SSLMODES: tuple[SSLMode, ...] = get_args(SSLMode)
# What an interactive shell on an SSH connection may do (hoop/server/ssh/shell_policy.py)
SHELL_POLICIES = ("allow", "review", "moderated", "deny")
SHELLS_WITH_APPROVERS = ("review", "moderated")
SHELL_RULE_PREFIX = "shell:"  # the rules behind shell_approvers (hoop/core/shell_rules.py)
SSH_CLIENTS = ("builtin", "openssh")  # how the gateway reaches SSH targets for exec, scp and sftp
# Whether the config being parsed reads its `${VAR}` / `file:` secrets now (see load_config).
_RESOLVE_SECRETS: ContextVar[bool] = ContextVar("resolve_secrets", default=True)


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


@dataclass(frozen=True)
class UserEntry:
    name: str
    groups: tuple[str, ...] = ()
    ssh_keys: tuple[str, ...] = ()
    # The MySQL connection a login that names no database gets (mariadb-dump, the mariadb
    # client's Ctrl-C connection); None: the one MySQL connection the user may reach, if one.
    default_connection: str | None = None


@dataclass(frozen=True)
class Connection:
    name: str
    type: str
    host: str
    port: int
    username: str = ""
    password: Secret | None = None
    database: str = ""
    groups: tuple[str, ...] = ()
    # The server is verified before any credential goes to it (README, "Upstream TLS").
    sslmode: SSLMode = "verify-full"
    sslrootcert: Path | None = None  # a private CA's certificate; the system CA store otherwise
    connect_timeout: float = 10.0
    # SSH targets
    private_key: Secret | None = None
    known_hosts: Path | None = None
    allow_file_transfer: bool = False
    allow_port_forwarding: bool = False
    allow_agent_forwarding: bool = False
    allow_x11: bool = False
    record_input: bool = False
    # Interactive shells: "allow", "review" (held for shell_approvers), "moderated" (runs
    # only while one of shell_approvers watches it) or "deny"; "" takes the default (deny
    # where a command rule covers the connection, allow elsewhere: ssh/shell_policy.py)
    shell: str = ""
    shell_approvers: tuple[str, ...] = ()
    shell_timeout: float = 300.0  # how long a shell waits for an approval or a first moderator
    ssh_client: str = "builtin"  # "openssh": exec, scp and sftp through an `ssh` child (openssh_leg.py)
    # MySQL targets
    allow_local_infile: bool = False
    server_public_key: Path | None = None  # pinned RSA key for caching_sha2 full auth without TLS

    def allows(self, groups: frozenset[str]) -> bool:
        """An empty group list means nobody: access is always granted explicitly."""
        return bool(groups.intersection(self.groups))


@dataclass(frozen=True)
class Config:
    path: Path
    gateway: GatewaySettings
    listen: ListenSettings
    users: tuple[UserEntry, ...] = ()
    connections: tuple[Connection, ...] = ()
    rules: tuple[Any, ...] = ()
    masking: tuple[Any, ...] = ()
    oidc: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    roles: RolesConfig = RolesConfig()  # [roles]: the groups of admins and auditors (hoop/core/roles.py)
    limits: Limits = field(default_factory=Limits)  # [limits], see hoop/core/limits.py
    notify: tuple[NotifyTarget, ...] = ()  # [[notify]], see hoop/core/notify_config.py

    def connection(self, name: str) -> Connection | None:
        for conn in self.connections:
            if conn.name == name:
                return conn
        return None

    def user(self, name: str) -> UserEntry | None:
        for user in self.users:
            if user.name == name:
                return user
        return None


class _Table:
    """Reads typed values out of one TOML table and remembers which keys were consumed."""

    def __init__(self, data: Any, file: str, key: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, key, f"expected a table, got {type(data).__name__}")
        self.data = dict(data)
        self.file = file
        self.key = key

    def _k(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self._k(name), problem)

    # `str`/`int` shadow the builtins inside this class body, hence `builtins.` in annotations below.
    # The overloads say when None can come back: only with no default and required=False.
    @overload
    def str(self, name: builtins.str, default: builtins.str, *, required: bool = ...) -> builtins.str: ...
    @overload
    def str(self, name: builtins.str, default: None = ..., *, required: Literal[True]) -> builtins.str: ...
    @overload
    def str(self, name: builtins.str, default: None = ..., *, required: bool = ...) -> builtins.str | None: ...
    def str(
        self, name: builtins.str, default: builtins.str | None = None, *, required: bool = False
    ) -> builtins.str | None:
        if name not in self.data:
            if required:
                raise self.error(name, "is required (expected a string)")
            return default
        value = self.data.pop(name)
        if not isinstance(value, str) or (required and not value):
            raise self.error(name, f"expected a non-empty string, got {value!r}")
        return value

    @overload
    def int(
        self, name: builtins.str, default: builtins.int, *, lo: builtins.int = ..., hi: builtins.int = ...
    ) -> builtins.int: ...
    @overload
    def int(
        self, name: builtins.str, default: None = ..., *, lo: builtins.int = ..., hi: builtins.int = ...
    ) -> builtins.int | None: ...
    def int(
        self, name: builtins.str, default: builtins.int | None = None, *, lo: builtins.int = 0, hi: builtins.int = 2**62
    ) -> builtins.int | None:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(name, f"expected an integer between {lo} and {hi}, got {value!r}")
        return value

    def float(self, name: builtins.str, default: float) -> float:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise self.error(name, f"expected a positive, finite number, got {value!r}")
        return float(value)

    def duration(
        self, name: builtins.str, default: builtins.float, maximum: builtins.float = MAX_DURATION
    ) -> builtins.float:
        """Seconds, or a text such as "30m", "8h", "30d"; positive, finite, at most `maximum`."""
        if name not in self.data:
            return default
        value = self.data.pop(name)
        try:
            seconds = parse_duration_text(value) if isinstance(value, builtins.str) else value
            return bounded(seconds, maximum)
        except ValueError as exc:
            raise self.error(name, f"expected a duration such as 30m, 8h or 30d: {exc}") from None

    def bool(self, name: builtins.str, default: bool) -> bool:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {value!r}")
        return value

    def strs(self, name: builtins.str) -> tuple[builtins.str, ...]:
        if name not in self.data:
            return ()
        value = self.data.pop(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def path(self, name: builtins.str, base: Path, default: builtins.str | None = None) -> Path | None:
        raw = self.str(name, default)
        if raw is None:
            return None
        p = Path(os.path.expanduser(raw))
        return p if p.is_absolute() else (base / p)

    def secret(self, name: builtins.str) -> Secret | None:
        raw = self.str(name)
        if raw is None:
            return None
        if not _RESOLVE_SECRETS.get():
            return DeferredSecret(raw, self.file, self._k(name))
        try:
            return resolve_secret(raw)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def done(self) -> None:
        if self.data:
            unknown = ", ".join(sorted(self.data))
            raise ConfigError(self.file, self._k(sorted(self.data)[0]), f"unknown key(s): {unknown}")


def parse_address(value: str, file: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(file, key, f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def load_config(path: str | os.PathLike[str], *, resolve_secrets: bool = True) -> Config:
    """Read and validate a hoop.toml; raises ConfigError naming the file and key.

    `resolve_secrets=False` leaves `${VAR}` and `file:` secrets unread until a command reveals
    one (hoop.core.secrets.DeferredSecret): only the gateway and `hoop check` need them."""
    p = Path(path)
    file = str(p)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "-", "file not found (pass -c FILE or create ./hoop.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "-", f"not valid TOML: {exc}") from None
    return parse_config(raw, p, resolve_secrets=resolve_secrets)


def parse_config(raw: dict[str, Any], path: Path, *, resolve_secrets: bool = True) -> Config:
    reset = _RESOLVE_SECRETS.set(resolve_secrets)
    try:
        return _parse_config(raw, path)
    finally:
        _RESOLVE_SECRETS.reset(reset)


def _parse_config(raw: dict[str, Any], path: Path) -> Config:
    file = str(path)
    base = path.resolve().parent
    top = _Table(raw, file, "")
    gateway = _gateway(top.data.pop("gateway", {}), file, base)
    listen = _listen(top.data.pop("listen", {}), file)
    users = _users(top.data.pop("users", []), file)
    connections = _connections(top.data.pop("connections", []), file, base)
    rules = _rules(top.data.pop("rules", []), file)
    masking = _masking(top.data.pop("masking", []), file)
    oidc = None
    auth = top.data.pop("auth", None)
    if auth is not None:
        oidc = _auth(auth, file)
    roles = roles_from_mapping(top.data.pop("roles", {}), file=file)
    limits = limits_from_mapping(top.data.pop("limits", {}), file=file)
    notify = notify_from_list(top.data.pop("notify", []), file=file, resolve=_RESOLVE_SECRETS.get())
    top.done()
    _check_default_connections(users, connections, file)
    _check_unique(rules, "rules", file)
    _check_unique(masking, "masking", file)
    return Config(
        path, gateway, listen, users, connections, rules, masking, oidc, roles=roles, limits=limits, notify=notify
    )


def _rules(value: Any, file: str) -> tuple[Any, ...]:
    tables = _list_of_tables(value, file, "rules")
    if not tables:
        return ()
    # The rule schema lives beside its engine.
    from hoop.core.guardrails import rule_from_mapping

    rules = tuple(rule_from_mapping(r, file=file, key=f"rules[{i}]") for i, r in enumerate(tables))
    for i, rule in enumerate(rules):
        if rule.name.startswith(SHELL_RULE_PREFIX):
            raise ConfigError(file, f"rules[{i}].name", f"the prefix {SHELL_RULE_PREFIX!r} is kept for shell approvers")
    return rules


def _masking(value: Any, file: str) -> tuple[Any, ...]:
    tables = _list_of_tables(value, file, "masking")
    if not tables:
        return ()
    from hoop.core.masking import mask_rule_from_mapping

    return tuple(mask_rule_from_mapping(m, file=file, key=f"masking[{i}]") for i, m in enumerate(tables))


def _list_of_tables(value: Any, file: str, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(file, key, f"expected an array of tables ([[{key}]])")
    return value


def _check_unique(items: tuple[Any, ...], key: str, file: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise ConfigError(file, f"{key}[{i}].name", f"duplicate name {item.name!r}")
        seen.add(item.name)


def _gateway(data: Any, file: str, base: Path) -> GatewaySettings:
    t = _Table(data, file, "gateway")
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


def _store_dsn(t: _Table) -> Secret | None:
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


def _listen(data: Any, file: str) -> ListenSettings:
    t = _Table(data, file, "listen")
    out: dict[str, tuple[str, int]] = {}
    for proto in ("postgres", "mysql", "ssh", "http"):
        value = t.str(proto)
        if value is not None:
            out[proto] = parse_address(value, file, f"listen.{proto}")
    t.done()
    return ListenSettings(**out)


def _users(data: Any, file: str) -> tuple[UserEntry, ...]:
    users = []
    for i, entry in enumerate(_list_of_tables(data, file, "users")):
        t = _Table(entry, file, f"users[{i}]")
        users.append(
            UserEntry(t.str("name", required=True), t.strs("groups"), t.strs("ssh_keys"), t.str("default_connection"))
        )
        t.done()
    _check_unique(tuple(users), "users", file)
    return tuple(users)


def _check_default_connections(users: tuple[UserEntry, ...], conns: tuple[Connection, ...], file: str) -> None:
    """A user's default_connection names a MySQL connection that user may use."""
    for i, user in enumerate(users):
        name = user.default_connection
        if name is None:
            continue
        conn = next((c for c in conns if c.name == name), None)
        if conn is None or conn.type != "mysql":
            problem = "no such connection" if conn is None else f"a {conn.type} connection"
            raise ConfigError(
                file, f"users[{i}].default_connection", f"expected a MySQL connection, got {name!r} ({problem})"
            )
        if not conn.allows(frozenset(user.groups)):
            raise ConfigError(
                file,
                f"users[{i}].default_connection",
                f"{user.name!r} may not use connection {name!r} (none of its groups {list(conn.groups)} is theirs)",
            )


def _sslmode(t: _Table) -> SSLMode:
    value = t.str("sslmode", "verify-full")
    for mode in SSLMODES:
        if value == mode:
            if mode == "verify-ca" and "sslrootcert" not in t.data:
                # as libpq refuses verify-ca with the system store: any public certificate
                # chains to it, whatever name it was issued for
                raise t.error(
                    "sslmode", "verify-ca needs sslrootcert (a private CA); use verify-full with the system CA store"
                )
            return mode
    raise t.error("sslmode", f"expected one of {', '.join(SSLMODES)}, got {value!r}")


def _connections(data: Any, file: str, base: Path) -> tuple[Connection, ...]:
    conns = []
    for i, entry in enumerate(_list_of_tables(data, file, "connections")):
        t = _Table(entry, file, f"connections[{i}]")
        name = t.str("name", required=True)
        kind = t.str("type", required=True)
        if kind not in CONNECTION_TYPES:
            raise t.error("type", f"expected one of {', '.join(CONNECTION_TYPES)}, got {kind!r}")
        default_port = {"postgres": 5432, "mysql": 3306, "ssh": 22}[kind]
        conn = Connection(
            name=name,
            type=kind,
            host=t.str("host", required=True),
            port=t.int("port", default_port, lo=1, hi=65535),
            username=t.str("username", required=True),
            password=t.secret("password"),
            database=t.str("database", ""),
            groups=t.strs("groups"),
            sslmode=_sslmode(t),
            sslrootcert=t.path("sslrootcert", base),
            connect_timeout=t.float("connect_timeout", 10.0),
            private_key=t.secret("private_key"),
            known_hosts=t.path("known_hosts", base),
            allow_file_transfer=t.bool("allow_file_transfer", False),
            allow_port_forwarding=t.bool("allow_port_forwarding", False),
            allow_agent_forwarding=t.bool("allow_agent_forwarding", False),
            allow_x11=t.bool("allow_x11", False),
            record_input=t.bool("record_input", False),
            shell=t.str("shell", ""),
            shell_approvers=t.strs("shell_approvers"),
            shell_timeout=t.duration("shell_timeout", 300.0, 24 * 3600.0),
            ssh_client=t.str("ssh_client", "builtin"),
            allow_local_infile=t.bool("allow_local_infile", False),
            server_public_key=t.path("server_public_key", base),
        )
        if conn.server_public_key is not None and kind != "mysql":
            raise t.error("server_public_key", "only MySQL connections use a pinned server public key")
        if conn.shell not in ("", *SHELL_POLICIES):
            raise t.error("shell", f"expected one of {', '.join(SHELL_POLICIES)}, got {conn.shell!r}")
        if conn.shell and kind != "ssh":
            raise t.error("shell", "only SSH connections have a shell policy")
        if conn.shell in SHELLS_WITH_APPROVERS and not conn.shell_approvers:
            raise t.error(
                "shell_approvers",
                f'shell = "{conn.shell}" needs the groups who approve or moderate shells (shell_approvers = ["ops"])',
            )
        if conn.shell_approvers and conn.shell not in SHELLS_WITH_APPROVERS:
            raise t.error("shell_approvers", 'only shell = "review" or "moderated" has shell approvers')
        if conn.ssh_client not in SSH_CLIENTS:
            raise t.error("ssh_client", f"expected one of {', '.join(SSH_CLIENTS)}, got {conn.ssh_client!r}")
        if "+" in name or "/" in name:
            raise t.error("name", "connection names may not contain '+' or '/'")
        t.done()
        conns.append(conn)
    _check_unique(tuple(conns), "connections", file)
    return tuple(conns)


def _auth(data: Any, file: str) -> Any:
    t = _Table(data, file, "auth")
    oidc = t.data.pop("oidc", None)
    t.done()
    if oidc is None:
        return None
    from hoop.core.oidc_config import oidc_from_mapping

    return oidc_from_mapping(oidc, file=file, key="auth.oidc")
