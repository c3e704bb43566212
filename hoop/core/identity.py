"""Who is asking: local tokens today, OIDC ID tokens behind the same interface later.

Tokens look like `hoop_<id>_<secret>`. The id lets us find the row without scanning; the
store keeps only SHA-256 of the whole token (it carries 256 bits of randomness, so a fast
hash is the right tool; a slow password hash buys nothing here). Every check reads the row,
so a revoked or expired token stops working on the very next login.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import Protocol, TypedDict

from hoop.core.config import Config
from hoop.core.durations import MAX_DURATION, bounded, parse_duration_text
from hoop.core.errors import AuthError, HoopError
from hoop.core.store.base import Store

TOKEN_PREFIX = "hoop_"
MAX_NAME = 255  # characters of a user (or connection) name a client may send at login


def name_problem(name: str, what: str = "user name") -> str:
    """Why `name`, as a client sent it to log in, cannot name anyone ("" when it can).

    One rule for every door, checked before any credential: a name that is empty, longer
    than MAX_NAME characters, not valid UTF-8 (doors decode names with surrogateescape, so
    such bytes arrive as lone surrogates) or holding white space or a control, format or
    other invisible character names no one. Such characters would also let one name pass
    for another in audit lists and terminals.
    """
    if not name:
        return f"no {what} given"
    if len(name) > MAX_NAME:
        return f"the {what} is longer than {MAX_NAME} characters"
    if name.isprintable() and " " not in name:
        return ""
    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cs":
            return f"the {what} is not valid UTF-8"
        if ch.isspace() or category[0] == "Z":
            return f"the {what} contains white space"
    odd = next(ch for ch in name if not ch.isprintable())
    return f"the {what} contains a control or invisible character (U+{ord(odd):04X})"


@dataclass(frozen=True)
class Identity:
    name: str
    groups: frozenset[str]
    source: str = "token"  # "token" | "oidc" | "ssh-key"
    expires: float | None = None


class Authenticator(Protocol):
    def authenticate(self, user: str, credential: str) -> Identity:
        """Return the identity or raise AuthError with a reason fit for the audit log."""
        ...


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_ttl(text: str, maximum: float = MAX_DURATION, limit: str = "") -> float:
    """'8h', '30m', '90s', '2d' or plain seconds -> seconds: positive, finite, at most `maximum`
    (`limit` names the setting that sets it, for the error)."""
    return bounded(parse_duration_text(text), maximum, limit=limit)


def valid_expiry(created: object, expires: object) -> bool:
    """Whether a stored expiry can be trusted: finite and within the longest lifetime Hoop
    issues. A row written before lifetimes were bounded (`inf`, NaN, centuries) is invalid."""
    if not isinstance(created, (int, float)) or not isinstance(expires, (int, float)):
        return False
    return math.isfinite(created) and math.isfinite(expires) and expires - created <= MAX_DURATION


class TokenRow(TypedDict):
    """A token as `TokenService.list` shows it (never its hash)."""

    id: str
    user: str
    created: float
    expires: float
    revoked: float | None  # when it was revoked
    note: str


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str
    expires: float


class TokenService:
    """Issue, list, revoke and check local tokens."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config

    def groups_of(self, user: str) -> frozenset[str]:
        entry = self.config.user(user)
        if entry is not None:
            return frozenset(entry.groups)
        stored = self.store.user_groups(user)
        return frozenset(stored or ())

    def known_user(self, user: str) -> bool:
        return self.config.user(user) is not None or self.store.user_groups(user) is not None

    def _lifetime(self, ttl: float) -> float:
        return bounded(ttl, self.config.gateway.max_token_ttl, what="token lifetime", limit="[gateway] max_token_ttl")

    def issue(self, user: str, ttl: float, note: str = "") -> IssuedToken:
        if not self.known_user(user):
            raise AuthError(f"unknown user {user!r}: add a [[users]] entry first")
        try:
            ttl = self._lifetime(ttl)
        except ValueError as exc:
            raise HoopError(str(exc)) from None
        token_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        self.store.execute(
            "INSERT INTO tokens(id, user, hash, created, expires, note) VALUES (?,?,?,?,?,?)",
            (token_id, user, hash_token(token), now, now + ttl, note),
        )
        return IssuedToken(token_id, token, now + ttl)

    def revoke(self, token_id: str) -> dict[str, object]:
        row = self.store.one("SELECT id, user, revoked FROM tokens WHERE id = ?", (token_id,))
        if row is None:
            raise AuthError(f"no token with id {token_id!r}")
        if row["revoked"] is None:
            self.store.execute("UPDATE tokens SET revoked = ? WHERE id = ?", (time.time(), token_id))
        return row

    def extend(self, token_id: str, ttl: float) -> float:
        """Move a live token's expiry to `ttl` seconds from now (a console keeps its short-lived
        token alive while it runs); returns the new expiry. A revoked token stays revoked."""
        ttl = self._lifetime(ttl)
        now = time.time()
        expires = now + ttl
        changed = self.store.execute(  # never revives a token that has expired or was revoked
            "UPDATE tokens SET expires = ? WHERE id = ? AND revoked IS NULL AND expires > ?",
            (expires, token_id, now),
        )
        if changed != 1:
            raise AuthError(f"no live token with id {token_id!r}")
        return expires

    def list(self) -> list[TokenRow]:
        rows = self.store.query("SELECT id, user, created, expires, revoked, note FROM tokens ORDER BY created")
        return [
            TokenRow(
                id=r["id"],
                user=r["user"],
                created=r["created"],
                expires=r["expires"],
                revoked=r["revoked"],
                note=r["note"],
            )
            for r in rows
        ]

    def authenticate(self, user: str, credential: str) -> Identity:
        if not credential.startswith(TOKEN_PREFIX):
            raise AuthError("credential is not a Hoop token")
        token_id = credential[len(TOKEN_PREFIX) :].split("_", 1)[0]
        row = self.store.one("SELECT user, hash, created, expires, revoked FROM tokens WHERE id = ?", (token_id,))
        # Compare against a dummy hash when the id is unknown so timing does not reveal ids.
        expected = row["hash"] if row else hash_token("")
        if not hmac.compare_digest(expected, hash_token(credential)) or row is None:
            raise AuthError("invalid token")
        if user and row["user"] != user:
            raise AuthError("token belongs to another user")
        user = row["user"]  # an empty user name means "whoever owns this token" (control endpoint)
        if row["revoked"] is not None:
            raise AuthError("token revoked")
        if not valid_expiry(row["created"], row["expires"]):
            raise AuthError("token has no valid expiry (issue a new one)")
        if row["expires"] <= time.time():
            raise AuthError("token expired")
        if not self.known_user(user):  # removed from hoop.toml since the token was issued
            raise AuthError(f"user {user!r} is not configured")
        return Identity(user, self.groups_of(user), "token", row["expires"])
