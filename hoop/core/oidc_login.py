"""Client side of OIDC: `hoop login` flows, the stored credential, and device login for SSH.

Two flows, both public-client safe (authlib builds and parses the OAuth messages, urllib
carries them, so no extra HTTP library is needed):

- Device authorization (RFC 8628): prints a URL and a short code, polls the token endpoint
  at the provider's interval (slowing down when told). Works over ssh and on headless hosts,
  and is what the gateway's SSH door uses for keyboard-interactive login
  (`start_device_login`).
- Authorization code with PKCE (S256) and a loopback redirect (RFC 8252): a one-shot HTTP
  server on 127.0.0.1:<free port> receives the code; `state` and `nonce` are checked.

Every ID token received is verified (signature, issuer, audience, times) before it is stored.
The credential file lives at $XDG_CONFIG_HOME/hoop/credentials.json (~/.config/... by
default), mode 0600 in a 0700 directory, written atomically; entries are keyed by issuer and
client id so one machine can log in to several gateways. Expired ID tokens are renewed with
the refresh token when there is one (`current_credential`).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response, prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from hoop.core.errors import AuthError, HoopError
from hoop.core.oidc import OIDCVerifier, ProviderError, discover, fetch_json, groups_from_claims
from hoop.core.oidc_config import OIDCConfig


class LoginError(HoopError):
    """A login flow failed (denied, expired, provider error); the message says which."""


class LoginRequired(LoginError):
    """No usable credential is stored: the user has to run `hoop login`."""


@dataclass
class TokenSet:
    id_token: str
    refresh_token: str | None
    expires_at: float
    user: str
    groups: list[str]

    def __repr__(self) -> str:  # never print tokens by accident
        return f"TokenSet(user={self.user!r}, groups={self.groups!r}, expires_at={self.expires_at:.0f})"


def _client_params(cfg: OIDCConfig) -> dict[str, str]:
    params = {"client_id": cfg.client_id}
    if cfg.client_secret is not None:
        params["client_secret"] = cfg.client_secret.reveal()  # client_secret_post
    return params


def _token_call(cfg: OIDCConfig, endpoint: str, **form: str) -> dict[str, Any]:
    return fetch_json(endpoint, cfg.timeout, data={**form, **_client_params(cfg)})


def _accept(
    cfg: OIDCConfig, answer: dict[str, Any], nonce: str | None = None, old_refresh: str | None = None
) -> TokenSet:
    """Verify the ID token in a token response and make a TokenSet of it."""
    if "error" in answer:
        raise LoginError(f"provider refused: {answer['error']}: {answer.get('error_description', '')}".rstrip(": "))
    id_token = answer.get("id_token")
    if not isinstance(id_token, str):
        raise LoginError("provider returned no ID token (is 'openid' in the scopes?)")
    try:
        claims = OIDCVerifier(cfg).verify(id_token)
    except AuthError as exc:
        raise LoginError(f"provider returned an ID token that does not verify: {exc.reason}") from None
    if nonce is not None and claims.get("nonce") != nonce:
        raise LoginError("ID token nonce does not match this login (possible replay)")
    user = claims.get(cfg.username_claim)
    if not isinstance(user, str) or not user:
        raise LoginError(f"ID token has no {cfg.username_claim!r} claim")
    return TokenSet(
        id_token,
        answer.get("refresh_token") or old_refresh,
        float(claims["exp"]),
        user,
        sorted(groups_from_claims(claims, cfg.groups_claim)),
    )


# -- device authorization flow ----------------------------------------------------------------


@dataclass
class DeviceAuthorization:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: float
    expires_at: float
    token_endpoint: str


def start_device(cfg: OIDCConfig) -> DeviceAuthorization:
    doc = discover(cfg)
    endpoint = doc.get("device_authorization_endpoint")
    if not isinstance(endpoint, str):
        raise LoginError("the provider does not offer the device flow; use `hoop login --browser`")
    answer = fetch_json(endpoint, cfg.timeout, data={"scope": " ".join(cfg.scopes), **_client_params(cfg)})
    if "error" in answer or "device_code" not in answer:
        raise LoginError(f"device authorization refused: {answer.get('error', 'no device_code in answer')}")
    return DeviceAuthorization(
        answer["device_code"],
        answer["user_code"],
        answer["verification_uri"],
        answer.get("verification_uri_complete"),
        float(answer.get("interval", 5)),
        time.time() + float(answer.get("expires_in", 600)),
        doc["token_endpoint"],
    )


def poll_device_once(cfg: OIDCConfig, auth: DeviceAuthorization) -> TokenSet | None:
    """One poll: a TokenSet when approved, None while pending; LoginError when it cannot succeed."""
    if time.time() > auth.expires_at:
        raise LoginError("the device code expired before the login was approved")
    answer = _token_call(cfg, auth.token_endpoint, grant_type=DEVICE_CODE_GRANT_TYPE, device_code=auth.device_code)
    error = answer.get("error")
    if error == "authorization_pending":
        return None
    if error == "slow_down":
        auth.interval += 5  # RFC 8628 section 3.5
        return None
    if error == "access_denied":
        raise LoginError("the login was denied at the identity provider")
    if error == "expired_token":
        raise LoginError("the device code expired before the login was approved")
    return _accept(cfg, answer)


def device_login(
    cfg: OIDCConfig, prompt: Callable[[DeviceAuthorization], None], sleep: Callable[[float], None] = time.sleep
) -> TokenSet:
    auth = start_device(cfg)
    prompt(auth)
    while True:
        sleep(auth.interval)
        tokens = poll_device_once(cfg, auth)
        if tokens is not None:
            return tokens


@dataclass
class DeviceLogin:
    """For the SSH door: show `verification_uri` and `user_code`, then `await wait()`."""

    verification_uri: str
    verification_uri_complete: str | None
    user_code: str
    cfg: OIDCConfig
    auth: DeviceAuthorization

    async def wait(self, timeout: float | None = None) -> str:
        """The ID token once the user approved; LoginError if denied/expired, TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                await asyncio.sleep(self.auth.interval)
                tokens = await asyncio.to_thread(poll_device_once, self.cfg, self.auth)
                if tokens is not None:
                    return tokens.id_token


async def start_device_login(cfg: OIDCConfig) -> DeviceLogin:
    auth = await asyncio.to_thread(start_device, cfg)
    return DeviceLogin(auth.verification_uri, auth.verification_uri_complete, auth.user_code, cfg, auth)


# -- authorization code + PKCE with a loopback redirect ------------------------------------------


class _Callback(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if not self.path.startswith("/callback"):
            self.send_error(404)
            return
        self.server.result = self.path  # type: ignore[attr-defined]
        body = b"Hoop login complete. You can close this window.\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def browser_login(
    cfg: OIDCConfig, open_url: Callable[[str], Any] = webbrowser.open, timeout: float = 300.0
) -> TokenSet:
    doc = discover(cfg)
    server = HTTPServer(("127.0.0.1", 0), _Callback)
    server.result = None  # type: ignore[attr-defined]
    server.timeout = 0.2
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    verifier, state, nonce = generate_token(64), generate_token(24), generate_token(24)
    url = prepare_grant_uri(
        doc["authorization_endpoint"],
        cfg.client_id,
        "code",
        redirect_uri,
        " ".join(cfg.scopes),
        state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        nonce=nonce,
    )
    done = threading.Event()

    def serve() -> None:
        while not done.is_set() and server.result is None:  # type: ignore[attr-defined]
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        open_url(url)
        thread.join(timeout)
    finally:
        done.set()
        thread.join(1)
        server.server_close()
    path = server.result  # type: ignore[attr-defined]
    if path is None:
        raise LoginError(f"no answer from the browser within {timeout:g}s")
    callback = redirect_uri.rsplit("/", 1)[0] + path
    if "error=" in path:
        from urllib.parse import parse_qs, urlsplit

        q = parse_qs(urlsplit(callback).query)
        raise LoginError(f"provider refused: {q.get('error', ['?'])[0]}")
    try:
        params = parse_authorization_code_response(callback, state=state)
    except AuthlibBaseError as exc:
        raise LoginError(f"bad redirect from the provider: {exc.error}") from None
    answer = _token_call(
        cfg,
        doc["token_endpoint"],
        grant_type="authorization_code",
        code=params["code"],
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    return _accept(cfg, answer, nonce=nonce)


# -- stored credential -------------------------------------------------------------------------


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "hoop" / "credentials.json"


def _entry_key(cfg: OIDCConfig) -> str:
    return f"{cfg.issuer} {cfg.client_id}"


def _read_all(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LoginError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _write_all(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def save_credential(cfg: OIDCConfig, tokens: TokenSet, path: Path | None = None) -> Path:
    path = path or credentials_path()
    data = _read_all(path)
    data[_entry_key(cfg)] = asdict(tokens)
    _write_all(path, data)
    return path


def load_credential(cfg: OIDCConfig, path: Path | None = None) -> TokenSet | None:
    entry = _read_all(path or credentials_path()).get(_entry_key(cfg))
    try:
        return TokenSet(**entry) if isinstance(entry, dict) else None
    except TypeError:
        return None


def forget_credential(cfg: OIDCConfig, path: Path | None = None) -> bool:
    path = path or credentials_path()
    data = _read_all(path)
    if data.pop(_entry_key(cfg), None) is None:
        return False
    _write_all(path, data)
    return True


def refresh(cfg: OIDCConfig, tokens: TokenSet) -> TokenSet:
    if not tokens.refresh_token:
        raise LoginRequired("the stored ID token expired and there is no refresh token: run `hoop login`")
    doc = discover(cfg)
    answer = _token_call(cfg, doc["token_endpoint"], grant_type="refresh_token", refresh_token=tokens.refresh_token)
    if answer.get("error") in ("invalid_grant", "invalid_token"):
        raise LoginRequired("the login session ended at the identity provider: run `hoop login`")
    return _accept(cfg, answer, old_refresh=tokens.refresh_token)


def current_credential(cfg: OIDCConfig, path: Path | None = None, min_valid: float = 60.0) -> TokenSet:
    """The stored credential, refreshed (and saved) when it expires within `min_valid` seconds."""
    tokens = load_credential(cfg, path)
    if tokens is None:
        raise LoginRequired("not logged in: run `hoop login`")
    if tokens.expires_at - time.time() > min_valid:
        return tokens
    try:
        tokens = refresh(cfg, tokens)
    except ProviderError as exc:
        raise LoginError(f"cannot renew the expired credential: {exc}") from None
    save_credential(cfg, tokens, path)
    return tokens
