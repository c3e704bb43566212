"""What `hoop check` says about connections whose server is not verified.

A connection with a password under `disable`, `prefer` or `require` (without `sslrootcert`)
is valid, and the gateway still refuses to reveal the password to an unverified server
(hoop.server.upstream_tls); but only SCRAM or MySQL scrambles can log in there, and the
connection can be read or impersonated on the way. That is worth a warning, not a failure.
"""

from __future__ import annotations

from hoop.core.config import Config

UNVERIFIED = ("disable", "prefer", "require")


def unverified_warnings(config: Config) -> list[str]:
    out = []
    for conn in config.connections:
        if conn.type not in ("postgres", "mysql") or not conn.password or not conn.password.reveal():
            continue
        if conn.sslmode in UNVERIFIED and not (conn.sslmode == "require" and conn.sslrootcert):
            pinned = " (its MySQL password goes only RSA-encrypted with server_public_key)"
            out.append(
                f"connection {conn.name!r} has a password but sslmode={conn.sslmode} does not verify the server; "
                "the gateway sends only SCRAM proofs or scrambles there"
                + (pinned if conn.type == "mysql" and conn.server_public_key else "")
                + "; use verify-full (sslrootcert for a private CA)"
            )
    return out
