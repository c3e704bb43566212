"""A small but real OpenID Connect provider for tests, on loopback (http.server + joserfc).

Serves: discovery, JWKS (with key rotation), device authorization (RFC 8628), an authorization
endpoint that auto-approves the configured test user, and a token endpoint for the
authorization_code (PKCE S256 required), device_code and refresh_token grants. ID tokens
carry `preferred_username` and a `groups` claim read from `users` at issue time, so a test
can take a group away and see the next token without it.

Test hooks: `rotate()` swaps the signing key, `mint()` makes a token with arbitrary claims
or headers, `approve(user_code)` approves a pending device login (the verification URL does
the same over HTTP), `jwks_requests` counts key downloads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class DeviceRequest:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires: float
    user: str | None = None
    denied: bool = False
    last_poll: float = 0.0


@dataclass
class Grant:
    user: str
    client_id: str
    redirect_uri: str = ""
    challenge: str = ""
    nonce: str | None = None
    used: bool = False
    created: float = field(default_factory=time.time)


class OIDCProvider:
    def __init__(
        self,
        client_id: str = "hoop",
        client_secret: str | None = None,
        users: dict[str, list[str]] | None = None,
        auto_user: str = "alice",
        id_token_ttl: int = 300,
        device_interval: int = 1,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.users: dict[str, list[str]] = users if users is not None else {"alice": ["dev"]}
        self.auto_user = auto_user
        self.id_token_ttl = id_token_ttl
        self.device_interval = device_interval
        self.keys: list[Any] = [self._new_key()]
        self.jwks_requests = 0
        self.device: dict[str, DeviceRequest] = {}
        self.codes: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "OIDCProvider":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "OIDCProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- keys and tokens -------------------------------------------------------------------

    @staticmethod
    def _new_key() -> RSAKey:
        return RSAKey.generate_key(
            2048, parameters={"kid": secrets.token_hex(6), "use": "sig", "alg": "RS256"}, auto_kid=False
        )

    @property
    def key(self) -> RSAKey:
        return self.keys[0]

    def rotate(self, keep_old: bool = False) -> RSAKey:
        """A new signing key; the old one leaves the JWKS unless `keep_old`."""
        with self.lock:
            self.keys = [self._new_key()] + (self.keys if keep_old else [])
            return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        return KeySet(list(self.keys)).as_dict(private=False)

    def claims_for(self, user: str, nonce: str | None = None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"sub-{user}",
            "aud": self.client_id,
            "azp": self.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.id_token_ttl,
            "auth_time": now,
            "preferred_username": user,
            "email": f"{user}@example.test",
            "groups": list(self.users.get(user, [])),
        }
        if nonce:
            claims["nonce"] = nonce
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        user: str = "alice",
        *,
        key: Any = None,
        alg: str = "RS256",
        header: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        key = key or self.key
        hdr = {"alg": alg, "kid": key.kid, **(header or {})}
        return jwt.encode(hdr, self.claims_for(user, **overrides), key, algorithms=[alg])

    def mint_es256(self, user: str = "alice") -> tuple[str, ECKey]:
        """An ES256 token from a fresh EC key, which is added to the JWKS."""
        ec = ECKey.generate_key("P-256", parameters={"kid": "ec-" + secrets.token_hex(4), "use": "sig"}, auto_kid=False)
        with self.lock:
            self.keys.append(ec)
        return self.mint(user, key=ec, alg="ES256"), ec

    def _tokens(self, grant: Grant) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = Grant(grant.user, grant.client_id)
        return {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": self.id_token_ttl,
            "id_token": self.mint(grant.user, nonce=grant.nonce),
            "refresh_token": refresh,
            "scope": "openid profile email groups",
        }

    # -- device flow -----------------------------------------------------------------------

    def approve(self, user_code: str, user: str | None = None, deny: bool = False) -> bool:
        with self.lock:
            for req in self.device.values():
                if req.user_code == user_code.upper():
                    req.user, req.denied = (user or self.auto_user), deny
                    return True
        return False


def _handler(p: OIDCProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _json(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, error: str, status: int = 400, description: str = "") -> None:
            self._json(status, {"error": error, "error_description": description or error})

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            data = parse_qs(self.rfile.read(length).decode())
            return {k: v[0] for k, v in data.items()}

        def _client_ok(self, form: dict[str, str]) -> bool:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            if client_id != p.client_id:
                return False
            return p.client_secret is None or secrets.compare_digest(secret or "", p.client_secret)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": p.issuer,
                        "jwks_uri": p.issuer + "/jwks",
                        "authorization_endpoint": p.issuer + "/authorize",
                        "token_endpoint": p.issuer + "/token",
                        "device_authorization_endpoint": p.issuer + "/device_authorization",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        "code_challenge_methods_supported": ["S256"],
                        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
                    },
                )
            elif url.path == "/jwks":
                with p.lock:
                    p.jwks_requests += 1
                    doc = p.jwks()
                self._json(200, doc)
            elif url.path == "/authorize":
                self._authorize(q)
            elif url.path == "/device":
                ok = p.approve(q.get("user_code", ""))
                body = b"approved\n" if ok else b"unknown code\n"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self._error("not_found", 404)

        def _authorize(self, q: dict[str, str]) -> None:
            redirect = q.get("redirect_uri", "")
            host = urlsplit(redirect).hostname
            if q.get("client_id") != p.client_id or host not in ("127.0.0.1", "localhost", "::1"):
                self._error("invalid_request", 400, "bad client_id or non-loopback redirect_uri")
                return
            if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                self._error("invalid_request", 400, "PKCE with S256 is required")
                return
            code = secrets.token_urlsafe(16)
            p.codes[code] = Grant(p.auto_user, p.client_id, redirect, q["code_challenge"], q.get("nonce"))
            params = {"code": code, **({"state": q["state"]} if "state" in q else {})}
            self.send_response(302)
            self.send_header("Location", redirect + ("&" if "?" in redirect else "?") + urlencode(params))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            form = self._form()
            if not self._client_ok(form):
                self._error("invalid_client", 401)
            elif path == "/device_authorization":
                req = DeviceRequest(
                    secrets.token_urlsafe(24),
                    secrets.token_hex(4).upper(),
                    p.client_id,
                    form.get("scope", ""),
                    time.time() + 600,
                )
                with p.lock:
                    p.device[req.device_code] = req
                uri = p.issuer + "/device"
                self._json(
                    200,
                    {
                        "device_code": req.device_code,
                        "user_code": req.user_code,
                        "verification_uri": uri,
                        "verification_uri_complete": f"{uri}?user_code={req.user_code}",
                        "expires_in": 600,
                        "interval": p.device_interval,
                    },
                )
            elif path == "/token":
                self._token(form)
            else:
                self._error("not_found", 404)

        def _token(self, form: dict[str, str]) -> None:
            kind = form.get("grant_type")
            if kind == "authorization_code":
                grant = p.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = b64url(hashlib.sha256(verifier.encode()).digest())
                if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                    self._error("invalid_grant")
                elif not secrets.compare_digest(challenge, grant.challenge):
                    self._error("invalid_grant", 400, "PKCE verification failed")
                else:
                    self._json(200, p._tokens(grant))
            elif kind == DEVICE_GRANT:
                with p.lock:
                    req = p.device.get(form.get("device_code", ""))
                    if req is None or req.expires < time.time():
                        return self._error("expired_token")
                    if req.denied:
                        return self._error("access_denied")
                    if req.user is None:
                        return self._error("authorization_pending")
                    del p.device[req.device_code]
                self._json(200, p._tokens(Grant(req.user, req.client_id)))
            elif kind == "refresh_token":
                grant = p.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if grant is None:
                    self._error("invalid_grant")
                else:
                    self._json(200, p._tokens(grant))
            else:
                self._error("unsupported_grant_type")

    return Handler
