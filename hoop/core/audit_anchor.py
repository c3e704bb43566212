"""The audit chain anchored outside the store: signed checkpoints and sealed recordings.

A hash chain shows edits, but not that its newest events were deleted: what is left still
verifies. So the journal writer signs a checkpoint of the chain's head (event count, head hash,
UTC time, key id) with an Ed25519 key kept in data_dir, every `audit_checkpoint_events` events
or `audit_checkpoint_interval` seconds and when it stops, and appends it as one JSON line to
`audit_checkpoint_file` (outside data_dir, ideally append-only: `chattr +a`, another disk or
a log shipper) and to its log. `hoop audit verify` (audit_check.py) compares the store with
every checkpoint. Before signing, the writer checks that the chain still holds the previous
checkpoint and extends it link by link (`audit.linked`, inside SQLite: recomputing every
event's hash in Python here cost the writer, and so the data path it shares two cores with,
about 6 us per statement), so a signature never covers a chain whose tail was rewritten;
`hoop audit verify` recomputes every hash.

When a session ends, the writer appends a `recording.sealed` event per recording file
(SHA-256 and size), so the chain also vouches for the recordings.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hoop.core import audit
from hoop.core.errors import HoopError
from hoop.core.log_format import setup_logging
from hoop.core.store.base import Store
from hoop.core.store.recordings import STORE_PREFIX, digest_chunks
from hoop.core.terminal import cast_path, keyframes_path

if TYPE_CHECKING:
    from hoop.core.config_gateway import GatewaySettings

log = logging.getLogger("hoop.audit")
CHECKPOINT_VERSION = 1
SEALED = "recording.sealed"
_SIGNED_PREFIX = b"hoop audit checkpoint\n"  # a signature made for a checkpoint means nothing elsewhere
_TAIL = 64 * 1024  # where the writer looks for the last checkpoint when it starts


# -- the signing key ----------------------------------------------------------------------


def ensure_key(path: Path) -> Ed25519PrivateKey:
    """The checkpoint key, created (mode 0600) on first use."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise HoopError(f"no audit checkpoint key at {path}: the gateway creates it when it starts") from None
    except (OSError, ValueError) as exc:
        raise HoopError(f"cannot read the audit checkpoint key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise HoopError(f"{path} is not an Ed25519 private key")
    return key


def public_text(key: Ed25519PublicKey) -> str:
    """How an auditor writes the key down and passes it to `hoop audit verify --key`."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + base64.b64encode(raw).decode()


def parse_public(text: str) -> Ed25519PublicKey:
    body = text.strip().removeprefix("ed25519:")
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(body, validate=True))
    except ValueError:
        raise HoopError(f"--key: expected ed25519:BASE64 as `hoop audit key` prints it, got {text!r}") from None


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# -- checkpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    count: int
    head: str
    time: str  # UTC, ISO 8601, to the second
    key: str  # key_id of the signer
    sig: str = ""  # base64 Ed25519 signature of `message()`

    def message(self) -> bytes:
        fields = {"v": CHECKPOINT_VERSION, "count": self.count, "head": self.head, "time": self.time, "key": self.key}
        return _SIGNED_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, head: audit.Head, now: float) -> Checkpoint:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        unsigned = cls(head.count, head.hash, stamp, key_id(key.public_key()))
        return replace(unsigned, sig=base64.b64encode(key.sign(unsigned.message())).decode())

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.sig, validate=True), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def line(self) -> str:
        fields = {"v": CHECKPOINT_VERSION, "count": self.count, "head": self.head, "time": self.time, "key": self.key}
        return json.dumps({**fields, "sig": self.sig}, separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        """Raises ValueError naming what is wrong with the line."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError("not JSON") from None
        if not isinstance(data, dict) or data.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"not a version {CHECKPOINT_VERSION} checkpoint")
        cp = cls(data.get("count"), data.get("head"), data.get("time"), data.get("key"), data.get("sig"))  # type: ignore[arg-type]
        if not (type(cp.count) is int and all(isinstance(v, str) for v in (cp.head, cp.time, cp.key, cp.sig))):
            raise ValueError("a field is missing or of the wrong type")
        return cp

    @property
    def at(self) -> audit.Head:
        return audit.Head(self.count, self.head)


def read_checkpoints(path: Path) -> Iterator[tuple[int, Checkpoint | str]]:
    """(line number, checkpoint or what is wrong with the line) for every non-empty line."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield number, Checkpoint.from_line(line)
            except ValueError as exc:
                yield number, str(exc)


def last_checkpoint(path: Path, key: Ed25519PublicKey) -> Checkpoint | None:
    """The newest checkpoint in the file's tail that `key` signed."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - _TAIL))
            tail = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            cp = Checkpoint.from_line(line)
        except ValueError:
            continue
        if cp.key == key_id(key) and cp.signed_by(key):
            return cp
    return None


def append_line(path: Path, line: str) -> None:
    """O_APPEND, so an append-only file (`chattr +a`) works; fsync, so a checkpoint the log
    announced is on disk."""
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the gateway side ---------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorSettings:
    """What the journal writer needs to anchor the chain; passed to it as argv."""

    key_path: Path
    checkpoint_file: Path
    every_events: int
    interval: float
    log_level: str = "info"
    log_format: str = "text"  # the gateway's [gateway] log_format: the writer's lines match its own

    def argv(self) -> list[str]:
        return [
            f"--anchor-key={self.key_path}",
            f"--anchor-file={self.checkpoint_file}",
            f"--anchor-events={self.every_events}",
            f"--anchor-interval={self.interval!r}",
            f"--log-level={self.log_level}",
            f"--log-format={self.log_format}",
        ]

    @classmethod
    def from_argv(cls, argv: list[str]) -> AnchorSettings | None:
        if not argv:
            return None
        parser = argparse.ArgumentParser(prog="journal_writer", add_help=False, exit_on_error=False)
        parser.add_argument("--anchor-key", type=Path, required=True)
        parser.add_argument("--anchor-file", type=Path, required=True)
        parser.add_argument("--anchor-events", type=int, required=True)
        parser.add_argument("--anchor-interval", type=float, required=True)
        parser.add_argument("--log-level", default="info")
        parser.add_argument("--log-format", default="text", choices=("text", "json"))
        args = parser.parse_args(argv)
        return cls(
            args.anchor_key, args.anchor_file, args.anchor_events, args.anchor_interval, args.log_level, args.log_format
        )


def prepare(gw: GatewaySettings) -> AnchorSettings:
    """At gateway start: the key exists and the checkpoint file can be appended to, or the
    gateway refuses to start with the reason (it would otherwise run unanchored)."""
    key = ensure_key(gw.checkpoint_key)
    path = gw.checkpoint_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
    except OSError as exc:
        raise HoopError(
            f"cannot append audit checkpoints to {path}: {exc.strerror or exc}; "
            "set [gateway] audit_checkpoint_file to a writable file outside data_dir"
        ) from None
    log.info("audit checkpoints go to %s, signed by %s", path, public_text(key.public_key()))
    return AnchorSettings(
        gw.checkpoint_key, path, gw.audit_checkpoint_events, gw.audit_checkpoint_interval, gw.log_level, gw.log_format
    )


class Anchor:
    """Lives in the journal writer: seals recordings after each batch and signs checkpoints
    on its own thread (with its own connection), so verifying new events before a signature
    never delays the writing of the next batch."""

    def __init__(self, store: Store, settings: AnchorSettings) -> None:
        _log_to_stderr(settings.log_level, settings.log_format)
        self.store = store  # the writer's: seal events are appended on the writer's thread
        self.settings = settings
        self.key = load_key(settings.key_path)
        self.last = last_checkpoint(settings.checkpoint_file, self.key.public_key())
        self._reader = store.reopen()
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hoop-audit-anchor", daemon=True)
        self._thread.start()

    def written(self, sessions: list[dict[str, Any]], closed: Iterable[int]) -> None:
        """After a batch: seal the recordings of the sessions it closed (`sessions` holds their
        rows), and wake the checkpoint thread once enough events are unanchored."""
        ended = set(closed)
        # A batch may carry a session's row twice (updated, then closed): one seal each.
        rows = {row["id"]: row for row in sessions if row["id"] in ended}
        try:
            events = [ev for row in rows.values() for ev in seal_events(row, self.store)]
            if events:
                audit.append(self.store, events)
        except Exception:  # the batch itself is written: it must not be reported as lost
            log.exception("the recordings of sessions %s could not be sealed", sorted(ended))
        anchored = self.last.count if self.last else 0
        if audit.head(self.store).count - anchored >= self.settings.every_events:
            self._due.set()

    def close(self) -> None:
        """At the writer's end (the gateway stopped or went away): one last checkpoint."""
        self._stop.set()
        self._due.set()
        self._thread.join()
        self._checkpoint_logged()
        self._reader.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._due.wait(self.settings.interval)
            self._due.clear()
            if not self._stop.is_set():
                self._checkpoint_logged()

    def _checkpoint_logged(self) -> None:
        try:
            self.checkpoint()
        except Exception:  # the next interval tries again
            log.exception("audit checkpoint failed")

    def checkpoint(self) -> Checkpoint | None:
        """Sign the head if the chain has grown and still extends the last checkpoint."""
        result = audit.linked(self._reader, self.last.at if self.last else None)
        if not result.ok:
            since = f"the checkpoint of {self.last.time} ({self.last.count} events)" if self.last else "its start"
            log.error(
                "audit chain broken at event %s since %s: %s; no checkpoint signed (run `hoop audit verify`)",
                result.bad_id,
                since,
                result.problem,
            )
            return None
        if result.head.count == (self.last.count if self.last else 0):
            return None
        cp = Checkpoint.sign(self.key, result.head, time.time())
        append_line(self.settings.checkpoint_file, cp.line())
        log.info("audit checkpoint %s", cp.line())
        self.last = cp
        return cp


def _log_to_stderr(level: str, log_format: str) -> None:
    """The writer's stderr is the gateway's: its lines read like the gateway's own."""
    if not logging.getLogger().handlers:
        setup_logging(level, log_format)


# -- sealed recordings --------------------------------------------------------------------


def recording_files(row: dict[str, Any]) -> list[Path]:
    """A session's recording and, for a terminal session, its cast and keyframes."""
    recording = Path(row["recording"])
    cast = cast_path(recording.parent, row["id"])
    return [recording, cast, keyframes_path(cast)]


def seal_events(row: dict[str, Any], store: Store | None = None) -> list[audit.AuditEvent]:
    """A seal (digest and size) of each of a session's recording files: in recordings_dir, or
    in a shared store's chunks (named `recording_chunks/<file name>`)."""
    events = []
    if store is not None and store.shared:
        for path in recording_files(row):
            digest = digest_chunks(store, path.name)
            if digest is not None:
                detail = {
                    "session": row["id"],
                    "path": STORE_PREFIX + path.name,
                    "sha256": digest[0],
                    "bytes": digest[1],
                }
                events.append(audit.AuditEvent("gateway", SEALED, row["connection"], detail))
        return events
    for path in recording_files(row):
        try:
            sha256, size = digest_file(path)
        except FileNotFoundError:  # a database session has no cast
            continue
        detail = {"session": row["id"], "path": str(path), "sha256": sha256, "bytes": size}
        events.append(audit.AuditEvent("gateway", SEALED, row["connection"], detail))
    return events


def digest_file(path: Path, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 and size of the file (of its first `limit` bytes if given)."""
    h, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20 if limit is None else min(1 << 20, limit - size)):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
