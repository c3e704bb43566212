"""Identity from an OpenID Connect provider: verify ID tokens, map claims to Identity.

Design (decided here, relied on by every door):

- The ID token itself is the password. `hoop login` stores it (and a refresh token) on the
  user's machine; `hoop env` / `hoop psql` hand it to psql, mariadb, ... as the password. The
  gateway verifies it on every new session; there is no second, Hoop-issued session token,
  so there is nothing extra to revoke or leak, and the provider's token lifetime (typically
  5-60 minutes) bounds how long a stolen credential is useful. Local `hoop_...` tokens keep
  working through TokenService; the two authenticators are tried in turn.
- Verification (all must hold, each failure has its own message for the client and audit):
  a compact JWS whose `alg` is in the configured allow-list (asymmetric only: `none` and
  HS* are refused before any key is touched, so a token "signed" with the provider's public
  key as an HMAC secret cannot pass), a `kid` present in the provider's JWKS, a valid
  signature, `iss` equal to the configured issuer, `aud` containing an accepted audience,
  `exp` in the future, `nbf` and `iat` not in the future, all with `clock_skew` leeway.
- JWKS: fetched on first use and cached. A token with an unknown `kid` (the provider rotated
  its keys) triggers a refetch, at most once per `jwks_min_refresh` seconds, so garbage
  tokens cannot make the gateway hammer the provider; the set is also refetched after
  `jwks_max_age`. Never fetched on every login.
- Groups come from the `groups_claim` of the token presented, at each login. A user known
  only to the provider is created in the store on first login (source "oidc") and its groups
  are rewritten whenever a token carries different ones, so a user who lost a group loses
  the connections of that group on their next login.
- Expiry is enforced when a session starts. A session already open when the token expires
  continues until it ends (like an SSH session outliving its certificate): cutting a running
  transaction in half is worse than the risk, and operators can kill sessions explicitly.
- Audit: `oidc.login` (groups, new_user, groups_changed), `oidc.login_failure` (reason),
  `oidc.jwks_refresh` (kids, why). The token never appears in any of them or in a log line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from hoop.core.errors import AuthError, HoopError
from hoop.core.identity import Identity
from hoop.core.oidc_config import OIDCConfig

log = logging.getLogger("hoop.oidc")

AuditFn = Callable[..., None]  # audit(actor, action, target, **detail)


class ProviderError(HoopError):
    """The OIDC provider could not be reached or answered something unusable."""


def fetch_json(
    url: str, timeout: float, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """GET (or form POST when `data` is given) and parse a JSON object. OAuth error bodies
    (HTTP 400/401 with JSON) are returned, not raised, so callers can read `error`."""
    from urllib.parse import urlencode

    body = urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        if exc.code not in (400, 401, 403):
            raise ProviderError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ProviderError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ProviderError(f"{url}: answer is not JSON") from None
    if not isinstance(doc, dict):
        raise ProviderError(f"{url}: answer is not a JSON object")
    return doc


def discover(cfg: OIDCConfig) -> dict[str, Any]:
    """The provider's discovery document, checked to be about the configured issuer."""
    doc = fetch_json(cfg.discovery_url, cfg.timeout)
    if doc.get("issuer") != cfg.issuer:
        raise ProviderError(f"discovery document names issuer {doc.get('issuer')!r}, expected {cfg.issuer!r}")
    if not isinstance(doc.get("jwks_uri"), str):
        raise ProviderError("discovery document has no jwks_uri")
    return doc


class JWKSCache:
    """The provider's signing keys by kid; refetched on an unknown kid, rate-limited."""

    def __init__(
        self, cfg: OIDCConfig, audit: AuditFn | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.audit = audit
        self.clock = clock
        self.keys: dict[str, Any] = {}
        self.fetched_at: float | None = None
        self.attempted_at: float | None = None
        self.fetches = 0
        self._jwks_uri: str | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> Any:
        """The key for `kid`, refreshing at most once per `jwks_min_refresh`; AuthError if absent."""
        with self._lock:
            now = self.clock()
            stale = self.fetched_at is None or now - self.fetched_at >= self.cfg.jwks_max_age
            if (stale or kid not in self.keys) and (
                self.attempted_at is None or now - self.attempted_at >= self.cfg.jwks_min_refresh
            ):
                self._refresh("first use" if self.fetched_at is None else "expired" if stale else "unknown kid")
            if kid not in self.keys:
                raise AuthError(f"token signed with unknown key id {kid!r} (not in the provider's JWKS)")
            return self.keys[kid]

    def _refresh(self, why: str) -> None:
        self.attempted_at = self.clock()
        try:
            if self._jwks_uri is None:
                self._jwks_uri = discover(self.cfg)["jwks_uri"]
            doc = fetch_json(self._jwks_uri, self.cfg.timeout)
            keyset = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (ProviderError, JoseError, ValueError, TypeError) as exc:
            # Keep the old keys: a provider outage must not lock out holders of valid tokens.
            log.warning("cannot fetch the provider's keys: %s", exc)
            if not self.keys:
                raise AuthError(f"cannot fetch the identity provider's keys: {exc}") from None
            return
        self.keys = {k.kid: k for k in keyset.keys if k.kid and k.get("use", "sig") == "sig"}
        self.fetched_at = self.clock()
        self.fetches += 1
        if self.audit is not None:
            self.audit("gateway", "oidc.jwks_refresh", self.cfg.issuer, why=why, kids=sorted(self.keys))


def _fmt(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


class OIDCVerifier:
    """Checks an ID token and returns its claims, or raises AuthError saying what is wrong."""

    def __init__(self, cfg: OIDCConfig, jwks: JWKSCache | None = None, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.jwks = jwks or JWKSCache(cfg)
        self.clock = clock

    def verify(self, token: str) -> dict[str, Any]:
        header = self._header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise AuthError("unsigned token (alg none) refused")
        if alg not in self.cfg.algorithms:
            raise AuthError(f"token algorithm {alg} is not accepted (allowed: {', '.join(self.cfg.algorithms)})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("token has no key id (kid) header")
        key = self.jwks.key(kid)
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except JoseError as exc:
            raise AuthError(f"bad token signature ({exc.error})") from None
        self._check_claims(claims)
        return claims

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        if token.count(".") != 2:
            raise AuthError("credential is not a JWT")
        try:
            return dict(jws.extract_compact(token.encode("ascii")).headers())
        except (JoseError, ValueError, UnicodeError):
            raise AuthError("credential is not a valid JWT") from None

    def _check_claims(self, c: dict[str, Any]) -> None:
        cfg, now, skew = self.cfg, self.clock(), self.cfg.clock_skew
        if c.get("iss") != cfg.issuer:
            raise AuthError(f"wrong issuer {c.get('iss')!r} (expected {cfg.issuer!r})")
        aud = c.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not set(auds).intersection(cfg.accepted_audiences):
            raise AuthError(f"wrong audience {aud!r} (expected {', '.join(cfg.accepted_audiences)})")
        if len(auds) > 1 and "azp" in c and c["azp"] not in cfg.accepted_audiences:
            raise AuthError(f"token was issued to another client (azp {c['azp']!r})")
        for name in ("exp", "iat"):
            if not isinstance(c.get(name), (int, float)) or isinstance(c.get(name), bool):
                raise AuthError(f"token has no valid {name} claim")
        if c["exp"] + skew <= now:
            raise AuthError(f"token expired at {_fmt(c['exp'])} ({now - c['exp']:.0f}s ago); run `hoop login`")
        nbf = c.get("nbf")
        if nbf is not None:
            if not isinstance(nbf, (int, float)) or isinstance(nbf, bool):
                raise AuthError("token has an invalid nbf claim")
            if nbf - skew > now:
                raise AuthError(f"token not valid before {_fmt(nbf)} (check the clocks)")
        if c["iat"] - skew > now:
            raise AuthError(f"token issued in the future ({_fmt(c['iat'])}; check the clocks)")


def looks_like_jwt(credential: str) -> bool:
    return credential.startswith("ey") and credential.count(".") == 2


def groups_from_claims(claims: dict[str, Any], claim: str) -> frozenset[str]:
    value = claims.get(claim, [])
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str) and v)


@dataclass(frozen=True)
class LoginResult:
    identity: Identity
    new_user: bool
    groups_changed: bool


class OIDCAuthenticator:
    """An Authenticator (see hoop.core.identity) for ID tokens presented as passwords."""

    def __init__(
        self,
        cfg: OIDCConfig,
        store: Any,
        audit: AuditFn | None = None,
        verifier: OIDCVerifier | None = None,
        local_users: Callable[[str], bool] | None = None,
        fallback: Any = None,
    ) -> None:
        self.cfg = cfg
        self.fallback = fallback  # e.g. TokenService: gets every credential that is not a JWT
        self.store = store
        self.audit = audit or (lambda *a, **k: None)
        self.verifier = verifier or OIDCVerifier(cfg, JWKSCache(cfg, self.audit))
        self.local_users = local_users or (lambda name: False)

    def authenticate(self, user: str, credential: str) -> Identity:
        if not looks_like_jwt(credential):
            # Not ours (a local token, a typo): the fallback's answer (and reason) is the one
            # that counts; no audit here, the caller audits the failure.
            if self.fallback is not None:
                identity: Identity = self.fallback.authenticate(user, credential)
                return identity
            raise AuthError("credential is neither a Hoop token nor an OIDC ID token")
        try:
            return self.login(user, credential).identity
        except AuthError as exc:
            self.audit(user or "-", "oidc.login_failure", self.cfg.issuer, reason=exc.reason)
            raise

    def login(self, user: str, token: str) -> LoginResult:
        claims = self.verifier.verify(token)
        name = claims.get(self.cfg.username_claim)
        if not isinstance(name, str) or not name:
            raise AuthError(f"token has no {self.cfg.username_claim!r} claim naming the user")
        if not name.isprintable():  # NUL and other controls: no store engine keeps them alike
            raise AuthError(f"token's {self.cfg.username_claim!r} claim has control characters")
        if user and name != user:
            raise AuthError(f"token is for user {name!r}, not {user!r}")
        groups = groups_from_claims(claims, self.cfg.groups_claim)
        previous = self.store.user_groups(name)
        new_user = previous is None
        changed = not new_user and frozenset(previous) != groups
        if (new_user or changed) and not self.local_users(name):
            # [[users]] entries stay authoritative for local accounts; only provider-only
            # users live in the store, refreshed whenever the token says something new.
            self.store.upsert_user(name, groups, source="oidc")
        detail: dict[str, Any] = {
            "groups": sorted(groups),
            "new_user": new_user,
            "groups_changed": changed,
            "expires": claims["exp"],
            "sub": claims.get("sub", ""),
        }
        if changed:
            detail["added"] = sorted(groups - frozenset(previous or ()))
            detail["removed"] = sorted(frozenset(previous or ()) - groups)
        self.audit(name, "oidc.login", self.cfg.issuer, **detail)
        return LoginResult(Identity(name, groups, "oidc", float(claims["exp"])), new_user, changed)


def authenticators_for(config: Any, store: Any, audit: AuditFn | None, tokens: Any) -> list[Any]:
    """The authenticator list for Services: `[tokens]` without `[auth.oidc]`, else one
    OIDCAuthenticator that verifies JWTs and hands every other credential to `tokens`, so
    each kind of credential fails with its own reason (not the last authenticator's)."""
    if getattr(config, "oidc", None) is None:
        return [tokens]
    return [
        OIDCAuthenticator(config.oidc, store, audit, local_users=lambda n: config.user(n) is not None, fallback=tokens)
    ]
