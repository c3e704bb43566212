"""Throughput settings shared by both legs of the SSH relay (client <-> gateway <-> target).

The gateway decrypts every byte from one side and encrypts it for the other, in one Python
process, so the cipher and the per-packet costs decide how close it gets to a direct `ssh`.

- Ciphers: SSH picks the first cipher in the *client's* list that the server also offers,
  and OpenSSH lists chacha20-poly1305 and aes-ctr before AES-GCM. Measured here with the
  `cryptography` backend, per 32 KiB packet: asyncssh's AES-GCM encrypts at ~1.0-1.4 GB/s
  and decrypts at ~1.0 GB/s (one AEAD call); aes128-ctr + umac-64-etm decrypts at ~0.5 GB/s
  (ctypes UMAC); chacha20-poly1305 runs at ~0.3-0.45 GB/s (several calls per packet). So the
  gateway offers clients AES-GCM only (it cut the gateway's CPU per transfer by 10-15% over
  aes-ctr), and prefers it towards targets. AES-GCM is in OpenSSH's default list, so this
  is never weaker than an OpenSSH default.
- Windows: a large receive window (8 MiB instead of 2 MiB) keeps the peer sending while the
  other leg is busy, and a send-buffer high-water mark of the same order means the relay pauses
  the other side only when a real backlog builds, not every 64 KiB.
- Packets: peers may send us up to 256 KiB per channel packet (OpenSSH sends at most 32 KiB
  data packets, so this only matters for clients that batch more); fewer packets means fewer
  Python calls per megabyte.
"""

from __future__ import annotations

from typing import Any

WINDOW = 8 * 1024 * 1024
MAX_PKTSIZE = 256 * 1024
# Pause the opposite channel's reading when this much is queued for a slow receiver.
WRITE_HIGH = 4 * 1024 * 1024
WRITE_LOW = 1 * 1024 * 1024

# Offered to clients: AES-GCM only, so OpenSSH (which lists chacha20 and aes-ctr before GCM)
# lands on GCM. Every OpenSSH since 6.2 and current PuTTY, libssh and Dropbear support it.
SERVER_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# Towards targets the gateway's order decides: GCM first, then OpenSSH's other defaults so
# that a target restricted to one of them still works.
TARGET_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "chacha20-poly1305@openssh.com",
)


def channel_options() -> dict[str, Any]:
    """Keyword arguments for asyncssh channel creation on either leg."""
    return {"window": WINDOW, "max_pktsize": MAX_PKTSIZE}


def connection_options(*, server: bool) -> dict[str, Any]:
    """Keyword arguments for asyncssh.create_server (server=True) or asyncssh.connect."""
    ciphers = SERVER_CIPHERS if server else TARGET_CIPHERS
    return {"encryption_algs": list(ciphers), "window": WINDOW, "max_pktsize": MAX_PKTSIZE}


def tune_channel(chan: Any) -> None:
    """Raise the write-buffer marks so pause/resume only fires on a real backlog."""
    chan.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)


# Key exchange towards targets when the target leg is OpenSSH's client (openssh_leg): the
# asyncssh leg's choice first. OpenSSH's default, sntrup761x25519, took ~100 ms of the
# target's CPU per login here, more than a whole 200 MB transfer gains from the faster leg;
# the post-quantum hybrids stay on the list for targets that require them.
TARGET_KEX = (
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "sntrup761x25519-sha512@openssh.com",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
)
