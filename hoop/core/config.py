"""One typed schema for hoop.toml.

Every table is read by a small function that pops the keys it knows and rejects whatever is
left, so a typo (`pasword = ...`) stops the gateway at start instead of silently doing nothing.
Errors name the file, the dotted key and what was expected.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from hoop.core.config_gateway import GatewaySettings, ListenSettings, gateway_settings, listen_settings
from hoop.core.config_table import RESOLVE_SECRETS, Table
from hoop.core.errors import ConfigError
from hoop.core.limits import Limits, limits_from_mapping
from hoop.core.notify_config import NotifyTarget, notify_from_list
from hoop.core.roles import RolesConfig, roles_from_mapping
from hoop.core.secrets import Secret

DEFAULT_CONFIG = "hoop.toml"
CONNECTION_TYPES = ("postgres", "mysql", "ssh")
SSLMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
SSLMODES: tuple[SSLMode, ...] = get_args(SSLMode)
# What an interactive shell on an SSH connection may do (hoop/server/ssh/shell_policy.py)
SHELL_POLICIES = ("allow", "review", "moderated", "deny")
SHELLS_WITH_APPROVERS = ("review", "moderated")
SHELL_RULE_PREFIX = "shell:"  # the rules behind shell_approvers (hoop/core/shell_rules.py)
SSH_CLIENTS = ("builtin", "openssh")  # how the gateway reaches SSH targets for exec, scp and sftp


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
    reset = RESOLVE_SECRETS.set(resolve_secrets)
    try:
        return _parse_config(raw, path)
    finally:
        RESOLVE_SECRETS.reset(reset)


def _parse_config(raw: dict[str, Any], path: Path) -> Config:
    file = str(path)
    base = path.resolve().parent
    top = Table(raw, file, "")
    gateway = gateway_settings(top.data.pop("gateway", {}), file, base)
    listen = listen_settings(top.data.pop("listen", {}), file)
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
    notify = notify_from_list(top.data.pop("notify", []), file=file, resolve=RESOLVE_SECRETS.get())
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


def _users(data: Any, file: str) -> tuple[UserEntry, ...]:
    users = []
    for i, entry in enumerate(_list_of_tables(data, file, "users")):
        t = Table(entry, file, f"users[{i}]")
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


def _sslmode(t: Table) -> SSLMode:
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
        t = Table(entry, file, f"connections[{i}]")
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
    t = Table(data, file, "auth")
    oidc = t.data.pop("oidc", None)
    t.done()
    if oidc is None:
        return None
    from hoop.core.oidc_config import oidc_from_mapping

    return oidc_from_mapping(oidc, file=file, key="auth.oidc")
