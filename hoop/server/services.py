"""What every protocol server is handed: config, store, journal, identity and the pipeline.

Protocol packages depend on this one object and never on each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hoop.core.approvals import Approvals
from hoop.core.config import Config, Connection
from hoop.core.errors import AccessDenied, AuthError, HoopError
from hoop.core.identity import Identity, TokenService
from hoop.core.oidc import authenticators_for
from hoop.core.pipeline import Pipeline
from hoop.core.roles import RoleSet, roles_of
from hoop.core.shell_rules import shell_rules
from hoop.core.store.base import Store, StoreUnavailable
from hoop.core.store.journal import Journal
from hoop.core.store.records import CloseStatus
from hoop.server.limiting import Limiter
from hoop.server.metrics import GatewayMetrics
from hoop.server.moderation import Moderators

log = logging.getLogger("hoop.gateway")

NO_SUCH_CONNECTION = "no such connection for you"


def store_unreachable(problem: str) -> str:
    """Why logins and statements are refused while a shared store does not answer; `problem`
    names the store by host, port and database, never its password."""
    return f"store unavailable: {problem}; the gateway refuses statements and logins until it answers again"


class Authenticator(Protocol):
    """Local tokens, OIDC ID tokens: raises AuthError when the credential is not accepted."""

    def authenticate(self, user: str, credential: str) -> Identity: ...


class Ender(Protocol):
    """Ends a live session: `reason` is told to its client; `status` is how it is stored."""

    def __call__(self, reason: str, status: CloseStatus = CloseStatus.KILLED) -> None: ...


@dataclass
class LiveSession:
    """A running client session the gateway can list, watch and kill."""

    id: int
    protocol: str
    user: str
    connection: str
    kill: Ender  # end it now, telling the client why
    kind: str = ""  # what kind of session where a protocol has several (ssh: exec, shell, lobby)


class Peers(Protocol):
    """The other gateways sharing this one's store (hoop/server/cluster.py)."""

    async def session_elsewhere(self, session_id: int) -> dict[str, Any] | None: ...
    async def open_elsewhere(self) -> list[dict[str, Any]]: ...
    async def ask(self, gateway: str, op: str, **params: Any) -> dict[str, Any]: ...


def _cannot_reload(actor: str) -> dict[str, Any]:
    raise HoopError("this gateway cannot reload its configuration")


class Services:
    def __init__(self, config: Config, store: Store, journal: Journal, pipeline: Pipeline) -> None:
        self.config = config
        self.store = store
        self.journal = journal
        self.pipeline = pipeline
        self.tokens = TokenService(store, config)
        # Local tokens, or (with [auth.oidc]) an OIDC verifier that hands non-JWTs to them.
        self.authenticators: list[Authenticator] = authenticators_for(config, store, journal.audit, self.tokens)
        self.live: dict[int, LiveSession] = {}
        self.moderators = Moderators()  # moderated sessions and who watches them
        self.approvals = Approvals(
            store, journal.audit, max_grant=config.gateway.max_grant, gateway=config.gateway.name
        )
        self.approvals.pending_per_user = config.limits.pending_approvals_per_user
        # Why logins through the doors are refused right now ("" while they are not): set while
        # the journal cannot store records (see recording_guard).
        self.refusing = ""
        self.limiter = Limiter(config.limits, journal.audit)  # [limits]: sessions, logins, pre-auth
        self.metrics = GatewayMetrics(self)  # served at [listen] http's /metrics
        # Reload hoop.toml as `actor` (set by the gateway; hoop/server/reload.py): what changed,
        # or ReloadRefused saying why nothing did.
        self.reload: Callable[[str], dict[str, Any]] = _cannot_reload
        self.peers: Peers | None = None  # set on a shared store: sessions and holds on other gateways

    async def authenticate(self, user: str, credential: str, *, door: str, client: str) -> Identity:
        """Check a credential, audit the outcome, return the identity or raise AuthError.

        After too many failures (per user, per source address) attempts are refused without the
        credential being looked at. The control socket is exempt: only local users that may
        open it reach it, and it must answer them even while a door is under attack."""
        throttled = door != "control"
        if throttled and (refusal := self.limiter.login_refusal(user, client)):
            # One event per source address per second, counting the attempts it stands for:
            # a flood of refused attempts must not become a flood of audit records.
            if attempts := self.limiter.throttled_report(client):
                self.journal.audit(user, "login.throttled", door, reason=refusal, client=client, attempts=attempts)
            raise AuthError(refusal)
        last: AuthError | None = None
        for auth in self.authenticators:
            try:
                identity = await asyncio.to_thread(auth.authenticate, user, credential)
            except AuthError as exc:
                last = exc
                continue
            except StoreUnavailable as exc:  # tokens and users live in the store: fail closed
                reason = store_unreachable(str(exc))
                self.journal.audit(user, "login.failure", door, reason=reason, client=client)
                raise AuthError(reason) from None
            if self.refusing and door != "control":  # approvers still reach the control endpoint
                self.journal.audit(user, "login.failure", door, reason=self.refusing, client=client)
                raise AuthError(self.refusing)
            if throttled:
                self.limiter.login_succeeded(user, client)
            return identity
        reason = last.reason if last else "no authenticator accepted the credential"
        if throttled:
            self.limiter.login_failed(user, client)
        self.journal.audit(user, "login.failure", door, reason=reason, client=client)
        raise AuthError(reason)

    def resolve_connection(self, identity: Identity, name: str, kind: str | None = None) -> Connection:
        """The connection this identity asked for, or AccessDenied with one answer for both
        'does not exist' and 'not yours' so names cannot be probed."""
        conn = self.config.connection(name)
        if conn is None or (kind is not None and conn.type != kind) or not conn.allows(identity.groups):
            raise AccessDenied(NO_SUCH_CONNECTION)
        return conn

    def connections_for(self, identity: Identity) -> list[Connection]:
        return [c for c in self.config.connections if c.allows(identity.groups)]

    def roles_of(self, identity: Identity) -> RoleSet:
        """The identity's roles under [roles], the guard rules in force now and the connections'
        shell approvers (hoop/core/roles.py, hoop/core/shell_rules.py)."""
        rules = [*self.pipeline.guard_rules, *shell_rules(self.config)]
        return roles_of(self.config.roles, rules, identity.groups)

    def register(self, live: LiveSession) -> None:
        self.live[live.id] = live

    def unregister(self, session_id: int) -> None:
        self.live.pop(session_id, None)
