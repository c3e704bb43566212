"""MySQL authentication plugins: client-side scrambles and the gateway's token-receiving side.

Client side (the gateway logging in upstream): mysql_native_password, caching_sha2_password
(fast path scramble; full path sends the password NUL-terminated over TLS, or RSA-OAEP
encrypted with the server's public key without TLS) and mysql_clear_password. When each may
be used is decided in upstream.py: the password goes only to a verified server or under a
pinned key.

Gateway side: the gateway must see the user's token in clear to verify it. It announces
caching_sha2_password and always answers "perform full authentication" (AuthMoreData 0x04),
so a caching_sha2-capable client (libmariadb's plugin, PyMySQL, aiomysql, Oracle's client)
sends the token NUL-terminated over TLS. Without TLS a client may ask for the RSA public key
(0x02) and send the token encrypted with it, or send it encrypted at once with a copy of the
key it holds; that is only enabled when a key is configured.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hoop.server.mysql.codec import CLIENT_PLUGIN_AUTH
from hoop.server.mysql.connection_phase import HandshakeResponse, build_auth_more_data, build_auth_switch

NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"
CLEAR_PASSWORD = "mysql_clear_password"

# caching_sha2_password AuthMoreData status bytes and client requests.
CACHING_SHA2_REQUEST_PUBLIC_KEY = b"\x02"
CACHING_SHA2_FAST_AUTH_SUCCESS = b"\x03"
CACHING_SHA2_PERFORM_FULL_AUTH = b"\x04"


class AuthProtocolError(Exception):
    """The authentication exchange cannot continue safely (e.g. clear text without TLS)."""


class PluginRefused(AuthProtocolError):
    """The client can only log in with a plugin the gateway cannot check (mysql_native_password)."""


# Why mysql_native_password is refused: its answer can only be checked against
# SHA1(SHA1(token)), and the store keeps one SHA-256 hash per token. A second, SHA1-based
# verifier would be a weaker copy of every token (with one observed exchange it logs in as
# the user), for no gain: over TLS the token may travel as caching_sha2's full authentication
# or mysql_clear_password, which every current client speaks.
NATIVE_REFUSED = (
    "mysql_native_password is not accepted: Hoop keeps only a SHA-256 hash of each token, against which a "
    "native password scramble cannot be checked; use a client with caching_sha2_password, or "
    "mysql_clear_password over TLS"
)


def _xor(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % len(key)] for i, b in enumerate(data))


def new_scramble() -> bytes:
    """20 random bytes in 1..127, as servers send them (no NUL, 7-bit safe)."""
    return bytes(secrets.randbelow(127) + 1 for _ in range(20))


def scramble_native_password(password: bytes, scramble: bytes) -> bytes:
    """SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty password -> b''."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    stage2 = hashlib.sha1(stage1).digest()
    return _xor(stage1, hashlib.sha1(scramble[:20] + stage2).digest())


def scramble_caching_sha2(password: bytes, scramble: bytes) -> bytes:
    """SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble); empty -> b''."""
    if not password:
        return b""
    p1 = hashlib.sha256(password).digest()
    p2 = hashlib.sha256(p1).digest()
    return _xor(p1, hashlib.sha256(p2 + scramble[:20]).digest())


def clear_password_response(password: bytes) -> bytes:
    """mysql_clear_password (and caching_sha2 full auth over TLS): password + NUL."""
    return password + b"\x00"


def rsa_encrypt_password(password: bytes, scramble: bytes, public_key_pem: bytes) -> bytes:
    """caching_sha2/sha256 full auth without TLS: RSA-OAEP(SHA1) of (password+NUL) XOR scramble."""
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise AuthProtocolError("server public key is not an RSA key")
    return key.encrypt(_xor(password + b"\x00", scramble[:20]), _OAEP)


def rsa_decrypt_password(private_key: rsa.RSAPrivateKey, ciphertext: bytes, scramble: bytes) -> bytes:
    """Gateway side of `rsa_encrypt_password`: returns the password without the NUL."""
    try:
        plain = _xor(private_key.decrypt(ciphertext, _OAEP), scramble[:20])
    except ValueError:
        raise AuthProtocolError("client sent an undecryptable password") from None
    return plain[:-1] if plain.endswith(b"\x00") else plain


_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def public_key_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class AuthStep:
    """Next move of the gateway: send `reply` (a payload) and/or use the finished `token`."""

    reply: bytes | None = None
    token: bytes | None = None


class ClearTokenAuth:
    """Sans-IO gateway side of caching_sha2_password that always takes the full-auth path.

    Usage: `step = auth.start(handshake_response)`, then while `step.token is None`: send
    `step.reply` (seq = last received + 1), read the client's next payload, `auth.feed(it)`.
    The resulting token is what the user typed as password; verify it, then send OK or ERR.
    A client that already answered with mysql_clear_password (over TLS) is accepted as is.
    """

    def __init__(self, scramble: bytes, tls: bool, rsa_private_key: rsa.RSAPrivateKey | None = None) -> None:
        self.scramble = scramble
        self.tls = tls
        self._key = rsa_private_key
        self._state = "new"

    def start(self, response: HandshakeResponse) -> AuthStep:
        plugin = response.auth_plugin
        if plugin == CLEAR_PASSWORD:
            if not self.tls:
                raise AuthProtocolError("mysql_clear_password refused without TLS")
            return self._done(_strip_nul(response.auth_response))
        if plugin == CACHING_SHA2_PASSWORD:
            return self._after_scramble(response.auth_response)
        if not response.capabilities & CLIENT_PLUGIN_AUTH:  # mysql_native_password, with no way to switch
            raise PluginRefused(f"{NATIVE_REFUSED} (the client cannot switch authentication plugins)")
        # Any other plugin (mysql_native_password too): ask the client to switch to ours.
        self._state = "switch"
        return AuthStep(reply=build_auth_switch(CACHING_SHA2_PASSWORD, self.scramble + b"\x00"))

    def feed(self, payload: bytes) -> AuthStep:
        if self._state == "switch":
            if len(payload) not in (0, 1, 32):  # caching_sha2 answers with 32 bytes (none for no token)
                raise PluginRefused(
                    f"{NATIVE_REFUSED} (the client answered the switch with a {len(payload)}-byte scramble)"
                )
            return self._after_scramble(payload)
        if self._state == "full":
            if self.tls:
                return self._done(_strip_nul(payload))
            if payload == CACHING_SHA2_REQUEST_PUBLIC_KEY and self._key is not None:
                self._state = "rsa"
                return AuthStep(reply=build_auth_more_data(public_key_pem(self._key)))
            if self._key is not None and len(payload) > 1:
                # a client holding the key already (a pinned copy) sends the token encrypted at once
                return self._done(rsa_decrypt_password(self._key, payload, self.scramble))
            raise AuthProtocolError("the token must be sent over TLS")
        if self._state == "rsa" and self._key is not None:
            return self._done(rsa_decrypt_password(self._key, payload, self.scramble))
        raise AuthProtocolError(f"unexpected authentication packet in state {self._state}")

    def _after_scramble(self, scrambled: bytes) -> AuthStep:
        if not scrambled or scrambled == b"\x00":
            return self._done(b"")  # empty password: the client sends nothing more
        self._state = "full"
        return AuthStep(reply=build_auth_more_data(CACHING_SHA2_PERFORM_FULL_AUTH))

    def _done(self, token: bytes) -> AuthStep:
        self._state = "done"
        return AuthStep(token=token)


def _strip_nul(data: bytes) -> bytes:
    return data[:-1] if data.endswith(b"\x00") else data
