"""OIDC identity against a real provider on loopback: config, verification, refusals,
key rotation, groups, both login flows, the stored credential and the canary."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import stat
import time
import urllib.request
from functools import partial
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey
from oidc_provider import OIDCProvider, b64url
from support.stores import everything_stored

from hoop.core import audit
from hoop.core.config import parse_config
from hoop.core.errors import AccessDenied, AuthError, ConfigError
from hoop.core.oidc import JWKSCache, OIDCAuthenticator, OIDCVerifier, authenticators_for
from hoop.core.oidc_config import oidc_from_mapping
from hoop.core.oidc_login import (
    LoginError,
    browser_login,
    current_credential,
    device_login,
    forget_credential,
    load_credential,
    save_credential,
    start_device_login,
)
from hoop.core.pipeline import Pipeline
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store
from hoop.core.store.journal import Journal

CLIENT_SECRET = "CANARY-oidc-secret-5f1c2e"


@pytest.fixture
def provider():  # type: ignore[no-untyped-def]
    with OIDCProvider(client_secret=CLIENT_SECRET, users={"alice": ["dev"], "bob": ["dba"]}) as p:
        yield p


def make_cfg(provider: OIDCProvider, **extra: object):  # type: ignore[no-untyped-def]
    data = {
        "issuer": provider.issuer,
        "client_id": "hoop",
        "client_secret": CLIENT_SECRET,
        "timeout": 5,
        "jwks_min_refresh": 0,
        **extra,
    }
    return oidc_from_mapping(data, file="hoop.toml", key="auth.oidc")


@pytest.fixture
def auth(provider: OIDCProvider, store: Store) -> OIDCAuthenticator:
    return OIDCAuthenticator(make_cfg(provider), store, partial(audit.record, store))


def last_event(store: Store, action: str) -> dict[str, object]:
    return audit.events(store, action=action)[-1]


# -- config ---------------------------------------------------------------------------------


def test_config_defaults_and_toml_section(tmp_path: Path) -> None:
    raw = {"auth": {"oidc": {"issuer": "https://id.example.com", "client_id": "hoop"}}}
    cfg = parse_config(raw, tmp_path / "hoop.toml").oidc
    assert cfg.accepted_audiences == ("hoop",)
    assert cfg.algorithms == ("RS256", "ES256")
    assert cfg.discovery_url == "https://id.example.com/.well-known/openid-configuration"


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ({"issuer": "http://id.example.com"}, "auth.oidc.issuer", "https"),
        ({"algorithms": ["RS256", "HS256"]}, "auth.oidc.algorithms", "HS256"),
        ({"algorithms": ["none"]}, "auth.oidc.algorithms", "never accepted"),
        ({"clock_skew": -1}, "auth.oidc.clock_skew", ">= 0"),
        ({"scopes": ["profile"]}, "auth.oidc.scopes", "openid"),
        ({"client_secret": "${HOOP_NO_SUCH_VAR_XYZ}"}, "auth.oidc.client_secret", "HOOP_NO_SUCH_VAR_XYZ"),
        ({"groupz_claim": "g"}, "auth.oidc.groupz_claim", "unknown key"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, extra: dict, key: str, words: str) -> None:
    raw = {"auth": {"oidc": {"issuer": "https://id.example.com", "client_id": "hoop", **extra}}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, tmp_path / "hoop.toml")
    assert err.value.key == key and words in err.value.problem


# -- gateway side: verification -----------------------------------------------------------------


def test_login_creates_user_then_refreshes_groups(
    provider: OIDCProvider, auth: OIDCAuthenticator, store: Store
) -> None:
    identity = auth.authenticate("alice", provider.mint("alice"))
    assert (identity.name, identity.groups, identity.source) == ("alice", frozenset({"dev"}), "oidc")
    assert identity.expires and identity.expires > time.time()
    assert store.one("SELECT source FROM users WHERE name = 'alice'") == {"source": "oidc"}
    assert last_event(store, "oidc.login")["detail"]["new_user"] is True

    provider.users["alice"] = ["dev", "dba"]
    assert auth.authenticate("alice", provider.mint("alice")).groups == {"dev", "dba"}
    assert store.user_groups("alice") == ("dba", "dev")
    event = last_event(store, "oidc.login")["detail"]
    assert event["groups_changed"] is True and event["added"] == ["dba"]


def test_es256_tokens_are_accepted(provider: OIDCProvider, auth: OIDCAuthenticator) -> None:
    token, _ = provider.mint_es256("bob")
    assert auth.authenticate("bob", token).groups == {"dba"}


def _hs256_with_public_key(provider: OIDCProvider) -> str:
    """The classic key-confusion forgery: HMAC keyed with the provider's public key."""
    pem = provider.key.as_pem(private=False)
    header = b64url(json.dumps({"alg": "HS256", "kid": provider.key.kid}).encode())
    payload = b64url(json.dumps(provider.claims_for("alice", groups=["dba"])).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


def _alg_none(provider: OIDCProvider) -> str:
    header = b64url(json.dumps({"alg": "none", "kid": provider.key.kid}).encode())
    return f"{header}.{b64url(json.dumps(provider.claims_for('alice')).encode())}."


def _forged(provider: OIDCProvider) -> str:
    """Signed by an attacker key that claims the provider's kid."""
    attacker = RSAKey.generate_key(2048, parameters={"kid": provider.key.kid}, auto_kid=False)
    return provider.mint("alice", key=attacker)


REFUSALS = {
    "expired": (
        lambda p: p.mint(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200),
        "token expired at",
    ),
    "not yet valid": (lambda p: p.mint(nbf=int(time.time()) + 3600), "not valid before"),
    "issued in the future": (lambda p: p.mint(iat=int(time.time()) + 3600), "issued in the future"),
    "wrong issuer": (lambda p: p.mint(iss="http://127.0.0.1:1/evil"), "wrong issuer 'http://127.0.0.1:1/evil'"),
    "wrong audience": (lambda p: p.mint(aud="another-app"), "wrong audience 'another-app'"),
    "bad signature": (_forged, "bad token signature"),
    "alg none": (_alg_none, "unsigned token (alg none) refused"),
    "hs256 with public key": (_hs256_with_public_key, "algorithm HS256 is not accepted"),
    "no username claim": (lambda p: p.mint(preferred_username=None), "no 'preferred_username' claim"),
    "another user's token": (lambda p: p.mint("bob"), "token is for user 'bob', not 'alice'"),
    "not a jwt": (lambda p: "eyJub3Q.e30.c2ln", "not a valid JWT"),
}


@pytest.mark.parametrize("name", ["al\x00ice", "al\nice", "alice\x1b[2J"])
def test_a_user_name_with_control_characters_is_refused_never_stored(
    name: str, provider: OIDCProvider, auth: OIDCAuthenticator, store: Store
) -> None:
    with pytest.raises(AuthError, match="'preferred_username' claim has control characters"):
        auth.login("", provider.mint(name))
    assert store.query("SELECT name FROM users") == []


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_have_clear_reasons_and_are_audited(
    case: str, provider: OIDCProvider, auth: OIDCAuthenticator, store: Store
) -> None:
    make, message = REFUSALS[case]
    with pytest.raises(AuthError) as err:
        auth.authenticate("alice", make(provider))
    assert message in err.value.reason
    failure = last_event(store, "oidc.login_failure")
    assert failure["actor"] == "alice" and message in failure["detail"]["reason"]
    assert store.user_groups("alice") is None  # nothing is created from a refused token


def test_unknown_kid_after_refresh_and_rotation_without_restart(
    provider: OIDCProvider, auth: OIDCAuthenticator
) -> None:
    old = provider.mint("alice")
    auth.authenticate("alice", old)
    auth.authenticate("alice", provider.mint("alice"))
    assert provider.jwks_requests == 1  # cached: not fetched at every login

    provider.rotate()  # the old key leaves the JWKS
    assert auth.authenticate("alice", provider.mint("alice")).name == "alice"
    assert provider.jwks_requests == 2
    with pytest.raises(AuthError, match="unknown key id") as err:
        auth.authenticate("alice", old)
    assert provider.key.kid not in err.value.reason
    stray = RSAKey.generate_key(2048, parameters={"kid": "never-published"}, auto_kid=False)
    with pytest.raises(AuthError, match="unknown key id 'never-published'"):
        auth.authenticate("alice", provider.mint("alice", key=stray))


def test_jwks_refresh_is_rate_limited(provider: OIDCProvider) -> None:
    cfg = make_cfg(provider, jwks_min_refresh=30)
    clock = [1000.0]
    verifier = OIDCVerifier(cfg, JWKSCache(cfg, clock=lambda: clock[0]))
    verifier.verify(provider.mint())
    provider.rotate()
    fresh = provider.mint()
    for _ in range(5):
        with pytest.raises(AuthError, match="unknown key id"):
            verifier.verify(fresh)
    assert provider.jwks_requests == 1  # unknown kids cannot make the gateway hammer the provider
    clock[0] += 31
    assert verifier.verify(fresh)["preferred_username"] == "alice"
    assert provider.jwks_requests == 2


def test_group_lost_access_is_refused_for_that_connection(
    store_target: Path | Secret, provider: OIDCProvider, tmp_path: Path
) -> None:
    from hoop.server.services import Services

    raw = {
        "auth": {"oidc": {"issuer": provider.issuer, "client_id": "hoop", "jwks_min_refresh": 0}},
        "connections": [
            {"name": "prod", "type": "postgres", "host": "127.0.0.1", "username": "postgres", "groups": ["dba"]}
        ],
    }
    config = parse_config(raw, tmp_path / "hoop.toml")
    store = open_store(store_target)
    journal = Journal(store_target, tmp_path / "rec")
    services = Services(config, store, journal, Pipeline())
    services.authenticators = authenticators_for(config, store, journal.audit, services.tokens)  # the wiring

    async def login(token: str):  # type: ignore[no-untyped-def]
        identity = await services.authenticate("bob", token, door="postgres", client="test")
        return services.resolve_connection(identity, "prod", "postgres")

    assert asyncio.run(login(provider.mint("bob"))).name == "prod"
    provider.users["bob"] = ["dev"]
    with pytest.raises(AccessDenied):
        asyncio.run(login(provider.mint("bob")))
    assert store.user_groups("bob") == ("dev",)
    with pytest.raises(AuthError, match="^invalid token$"):  # local tokens keep their own reasons
        asyncio.run(login("hoop_abcd1234_nope"))
    local = services.tokens.issue("bob", 60).token  # bob is known now (created by his OIDC login)
    identity = asyncio.run(services.authenticate("bob", local, door="postgres", client="test"))
    assert (identity.source, identity.groups) == ("token", {"dev"})
    journal.close()
    actions = [e["action"] for e in audit.events(store)]
    assert actions.count("oidc.login") == 2 and "oidc.jwks_refresh" in actions
    store.close()


# -- client side: login flows and the stored credential -----------------------------------------------


def _approve_over_http(auth) -> None:  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(auth.verification_uri_complete, timeout=5) as resp:
        assert resp.status == 200


def test_device_flow_login(provider: OIDCProvider) -> None:
    provider.users["alice"] = ["dev", "ops"]
    tokens = device_login(make_cfg(provider), _approve_over_http, sleep=lambda s: time.sleep(0.05))
    assert (tokens.user, tokens.groups) == ("alice", ["dev", "ops"])
    assert tokens.refresh_token and tokens.id_token.count(".") == 2


def test_device_flow_denied(provider: OIDCProvider) -> None:
    with pytest.raises(LoginError, match="denied"):
        device_login(make_cfg(provider), lambda a: provider.approve(a.user_code, deny=True), sleep=lambda s: None)


def test_async_device_login_for_the_ssh_door(provider: OIDCProvider, store: Store) -> None:
    cfg = make_cfg(provider)

    async def run() -> str:
        login = await start_device_login(cfg)
        assert login.user_code and login.verification_uri.startswith(provider.issuer)
        asyncio.get_running_loop().call_later(0.3, provider.approve, login.user_code)
        return await login.wait(timeout=10)

    token = asyncio.run(run())
    assert OIDCAuthenticator(cfg, store).authenticate("alice", token).name == "alice"


def test_browser_flow_with_pkce(provider: OIDCProvider) -> None:
    visited: list[str] = []

    def browser(url: str) -> None:
        visited.append(url)
        with urllib.request.urlopen(url, timeout=5) as resp:  # follows the redirect to the loopback
            assert b"login complete" in resp.read()

    tokens = browser_login(make_cfg(provider), browser, timeout=10)
    assert tokens.user == "alice"
    assert "code_challenge_method=S256" in visited[0] and "nonce=" in visited[0]


def test_credential_file_is_private_and_refreshed(provider: OIDCProvider, tmp_path: Path) -> None:
    cfg = make_cfg(provider)
    path = tmp_path / "cfg" / "hoop" / "credentials.json"
    tokens = device_login(cfg, lambda a: provider.approve(a.user_code), sleep=lambda s: time.sleep(0.05))
    save_credential(cfg, tokens, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_credential(cfg, path).id_token == tokens.id_token  # type: ignore[union-attr]
    provider.users["alice"] = ["dev", "dba"]
    renewed = current_credential(cfg, path, min_valid=10_000)  # forces a refresh-token renewal
    assert renewed.id_token != tokens.id_token and renewed.groups == ["dba", "dev"]
    assert load_credential(cfg, path).id_token == renewed.id_token  # type: ignore[union-attr]
    assert forget_credential(cfg, path) and load_credential(cfg, path) is None


def test_canary_token_and_secret_never_stored_or_logged(
    provider: OIDCProvider, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = OIDCAuthenticator(make_cfg(provider), store, partial(audit.record, store))
    good = provider.mint("alice")
    auth.authenticate("alice", good)
    bad = provider.mint("alice", aud="other")
    with pytest.raises(AuthError) as err:
        auth.authenticate("alice", bad)
    # Every row, and on SQLite the files themselves (a deleted or overwritten value can linger
    # in a page or the write-ahead log).
    blobs = everything_stored(store).encode()
    blobs += b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("hoop.db"))
    for secret in (good, bad, good.split(".")[2], CLIENT_SECRET):
        assert secret.encode() not in blobs
        assert secret not in caplog.text and secret not in str(err.value)
    assert b"alice" in blobs  # the check above looked at the right files
    assert CLIENT_SECRET not in repr(make_cfg(provider))


def test_login_commands_need_an_oidc_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hoop.cli import main

    config = tmp_path / "hoop.toml"
    config.write_text('[gateway]\ndata_dir = "data"\n')
    assert main(["login", "--device", "-c", str(config)]) == 1
    assert "has no [auth.oidc] section" in capsys.readouterr().err
