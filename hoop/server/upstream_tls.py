"""How the gateway trusts an upstream database before it sends the stored credential.

`sslmode` reads as libpq defines it, for PostgreSQL and MySQL alike:

- disable: no TLS. prefer: TLS when offered, certificate not checked.
- require: TLS, certificate not checked; with `sslrootcert` it is checked against that CA
  (libpq treats require + a root certificate as verify-ca).
- verify-ca: the certificate chains to the CA in `sslrootcert`, or to the system CA store.
- verify-full (the default): as verify-ca, and the certificate names the host connected to.

Encryption without verification stops an eavesdropper, not an impostor: whoever answers at
the address can present any certificate. So a method that hands the server the password (or
a hash that replays like it) is used only when the server's identity was verified; the
protocol modules ask `verified()` before sending one.
"""

from __future__ import annotations

import ssl

VERIFYING = ("verify-ca", "verify-full")
FIX = "set sslmode=verify-full (with sslrootcert naming the CA file of a private CA)"


def effective_mode(sslmode: str, rootcert: str | None) -> str:
    """`sslmode` as libpq applies it: require with a root certificate verifies the CA."""
    if sslmode == "require" and rootcert:
        return "verify-ca"
    return sslmode


def verified(sslmode: str, rootcert: str | None, tls: bool) -> bool:
    """Whether a connection that negotiated `tls` under `sslmode` verified the server."""
    return tls and effective_mode(sslmode, rootcert) in VERIFYING


def client_context(sslmode: str, rootcert: str | None) -> ssl.SSLContext:
    """The TLS context for `sslmode`: the system CA store unless `rootcert` names a CA file."""
    mode = effective_mode(sslmode, rootcert)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode not in VERIFYING:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if rootcert:
        ctx.load_verify_locations(cafile=rootcert)
    else:
        ctx.load_default_certs()
    ctx.check_hostname = mode == "verify-full"
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def unverified_refusal(asked: str, sslmode: str, other_fix: str = "") -> str:
    """The error text when a server asks for something that would reveal the password."""
    fix = FIX + (f", or {other_fix}" if other_fix else "")
    return f"server asked for {asked} but its identity is not verified (sslmode={sslmode}); {fix}; nothing was sent"


def untrusted(host: str, port: int, sslmode: str, exc: ssl.SSLCertVerificationError) -> str:
    """The error text when the server's certificate does not verify."""
    reason = exc.verify_message or exc.reason or str(exc)
    return (
        f"TLS handshake with {host}:{port} failed: certificate verify failed: {reason} (sslmode={sslmode}; "
        "for a server with a private CA, name the CA file in sslrootcert); nothing was sent"
    )
