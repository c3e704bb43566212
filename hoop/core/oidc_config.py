"""The `[auth.oidc]` table of hoop.toml: which OpenID Connect provider vouches for users.

```toml
[auth.oidc]
issuer = "https://login.example.com/realms/acme"   # discovery: {issuer}/.well-known/openid-configuration
client_id = "hoop"
client_secret = "${HOOP_OIDC_SECRET}"               # optional (public clients use PKCE only)
scopes = ["openid", "profile", "email", "offline_access"]
username_claim = "preferred_username"               # claim that names the Hoop user
groups_claim = "groups"                             # claim listing the user's groups
audiences = ["hoop"]                                # ID token `aud` must contain one (default: client_id)
clock_skew = 60                                     # seconds of leeway for exp / nbf / iat
algorithms = ["RS256", "ES256"]                     # asymmetric only; `none` and HS* are refused
jwks_min_refresh = 30                               # at most one JWKS fetch per this many seconds
jwks_max_age = 3600                                 # refetch the JWKS after this many seconds anyway
timeout = 10                                        # seconds for each HTTP call to the provider
```

The issuer must use https; plain http is accepted only for a loopback host (tests, local dev).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hoop.core.config_table import Table
from hoop.core.errors import ConfigError
from hoop.core.secrets import Secret

# Asymmetric algorithms only: HS* would let anyone holding the (public) JWKS forge tokens
# if a key were ever used as an HMAC secret, and `none` is no signature at all.
SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")


@dataclass(frozen=True)
class OIDCConfig:
    issuer: str
    client_id: str
    client_secret: Secret | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    audiences: tuple[str, ...] = ()
    clock_skew: float = 60.0
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    jwks_min_refresh: float = 30.0
    jwks_max_age: float = 3600.0
    timeout: float = 10.0

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        return self.audiences or (self.client_id,)

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _number(t: Table, name: str, default: float, *, zero_ok: bool = False) -> float:
    if name not in t.data:
        return default
    value = t.data.pop(name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        expected = "a number >= 0" if zero_ok else "a positive number"
        raise t.error(name, f"expected {expected} (seconds), got {value!r}")
    return float(value)


def oidc_from_mapping(data: Any, *, file: str, key: str) -> OIDCConfig:
    """Validate one `[auth.oidc]` table; raises ConfigError naming the file and the key."""
    t = Table(data, file, key)
    issuer = t.str("issuer", required=True)
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise t.error("issuer", f"expected an https:// URL, got {issuer!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise t.error("issuer", "must use https (plain http is only accepted for a loopback host)")
    if parts.query or parts.fragment:
        raise t.error("issuer", "may not contain a query or fragment")
    client_id = t.str("client_id", required=True)
    client_secret = t.secret("client_secret")
    scopes = t.strs("scopes") or DEFAULT_SCOPES
    if "openid" not in scopes:
        raise t.error("scopes", "must include 'openid' (no ID token is issued without it)")
    algorithms = t.strs("algorithms") or ("RS256", "ES256")
    for alg in algorithms:
        if alg not in SUPPORTED_ALGORITHMS:
            raise t.error(
                "algorithms",
                f"{alg!r} is not allowed; expected some of {', '.join(SUPPORTED_ALGORITHMS)} "
                "(none and HS* are never accepted)",
            )
    cfg = OIDCConfig(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        username_claim=t.str("username_claim", "preferred_username"),
        groups_claim=t.str("groups_claim", "groups"),
        audiences=t.strs("audiences"),
        clock_skew=_number(t, "clock_skew", 60.0, zero_ok=True),
        algorithms=algorithms,
        jwks_min_refresh=_number(t, "jwks_min_refresh", 30.0, zero_ok=True),
        jwks_max_age=_number(t, "jwks_max_age", 3600.0),
        timeout=_number(t, "timeout", 10.0),
    )
    if not cfg.username_claim:
        raise ConfigError(file, f"{key}.username_claim", "expected a non-empty claim name")
    if cfg.clock_skew > 600:
        raise t.error("clock_skew", f"expected at most 600 seconds, got {cfg.clock_skew:g}")
    t.done()
    return cfg
