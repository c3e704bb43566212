"""What `hoop audit verify` checks: the chain, the signed checkpoints, an expected head, and
the sealed recordings. Each check adds what it found to one `Report`; any problem fails.

The chain proves every event up to its newest one; the checkpoints (audit_anchor.py) prove how
far it reached when they were signed, so a store with fewer events than a checkpoint counts has
lost its newest ones. Without any checkpoint the report says the trail is not anchored, and the
verdict rests on the chain alone (exit 0 if intact): a checkpoint file can be truncated as
easily as deleted, so only its storage (append-only, elsewhere) or a head the auditor kept
(`--expect COUNT:HASH`) proves the newest events are all there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hoop.core import audit
from hoop.core.audit_anchor import SEALED, Checkpoint, digest_file, key_id, load_key, read_checkpoints
from hoop.core.errors import HoopError
from hoop.core.store.base import Store
from hoop.core.store.recordings import STORE_PREFIX, digest_chunks, stored_size


@dataclass
class Report:
    passed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Verifier:
    def __init__(self, store: Store, recordings_dir: Path | None = None) -> None:
        self.store = store
        self.recordings_dir = recordings_dir
        self.report = Report()
        self.chain = audit.verify(store)
        self.stored = audit.head(store)  # the newest event the store holds, verified or not

    def check_chain(self) -> None:
        c = self.chain
        if c.ok:
            self.report.passed.append(f"chain intact: {c.checked} events (head {c.head})")
        else:
            self.report.problems.append(
                f"chain BROKEN at event {c.bad_id}: {c.problem} ({c.checked} events before it verified)"
            )

    def check_checkpoints(self, path: Path, key: Ed25519PublicKey | None, key_source: str) -> None:
        if not path.exists():
            self.report.warnings.append(
                f"NOT ANCHORED: no checkpoint file at {path}; deleted newest events cannot be detected "
                "(pass --checkpoints FILE or --expect COUNT:HASH)"
            )
            return
        kid = key_id(key) if key is not None else ""
        signed: list[Checkpoint] = []
        for number, entry in read_checkpoints(path):
            where = f"{path} line {number}"
            if isinstance(entry, str):
                self.report.problems.append(f"BAD CHECKPOINT at {where}: {entry}")
            elif key is None:
                self.report.problems.append(f"UNCHECKED CHECKPOINT at {where}: no key to check it ({key_source})")
            elif entry.key != kid:
                self.report.problems.append(
                    f"FOREIGN CHECKPOINT at {where}: signed by key {entry.key}, not {kid} ({key_source})"
                )
            elif not entry.signed_by(key):
                self.report.problems.append(f"FORGED CHECKPOINT at {where}: its signature is not valid")
            else:
                signed.append(entry)
        if not signed:
            self.report.warnings.append(f"NOT ANCHORED: no valid signed checkpoint in {path}")
            return
        # Deleted newest events are reported once, against the checkpoint that counts the most.
        reach = max(signed, key=lambda cp: cp.count)
        compared = [cp for cp in signed if cp.count <= self.stored.count or cp is reach]
        if all([self._holds(cp.at, f"the signed checkpoint of {cp.time}") for cp in compared]):  # a list: all run
            newer = self.stored.count - reach.count
            self.report.passed.append(
                f"matches signed checkpoint of {reach.time} ({reach.count} events); {len(signed)} checkpoints "
                f"checked with key {kid} ({key_source})"
                + (f"; {newer} newer events not yet checkpointed" if newer else "")
            )

    def check_expected(self, expected: audit.Head) -> None:
        if self._holds(expected, f"the expected head {expected}"):
            self.report.passed.append(f"matches the expected head ({expected.count} events)")

    def _holds(self, head: audit.Head, what: str) -> bool:
        """Does the store hold event `head.count` with hash `head.hash`? Reports why not."""
        if head.count > self.stored.count:
            last = min(self.stored.count, self.chain.head.count)
            self.report.problems.append(
                f"DELETED: {head.count - self.stored.count} newest events deleted after event "
                f"{self.stored.count} (last verified: {self._describe(last)}); {what} counts {head.count} events"
            )
            return False
        row = self.store.one("SELECT hash FROM audit WHERE id = ?", (head.count,)) if head.count else None
        found = row["hash"] if row else (audit.GENESIS if head.count == 0 else None)
        if found is None:
            self.report.problems.append(f"DELETED: event {head.count}, named by {what}, is missing")
            return False
        if found != head.hash:
            self.report.problems.append(f"REWRITTEN: event {head.count} does not have the hash {what} records")
            return False
        return True

    def _describe(self, event_id: int) -> str:
        row = audit.event(self.store, event_id)
        if row is None:
            return "none"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["ts"]))
        return f"id {row['id']}, action {row['action']}, time {stamp}"

    def check_recordings(self) -> None:
        seals: dict[str, dict[str, Any]] = {}  # the latest seal of each file
        for row in self.store.query("SELECT detail FROM audit WHERE action = ? ORDER BY id", (SEALED,)):
            detail = json.loads(row["detail"])
            seals[detail["path"]] = detail
        bad = 0
        for path, seal in seals.items():
            problem = self.recording_problem(path, seal["sha256"], seal["bytes"])
            if problem:
                bad += 1
                self.report.problems.append(f"RECORDING {path} (session {seal['session']}): {problem}")
        if not bad:
            self.report.passed.append(f"recordings: {len(seals)} sealed files match their digests")
        sealed = {seal["session"] for seal in seals.values()}
        ended = {r["id"] for r in self.store.query("SELECT id FROM sessions WHERE ended IS NOT NULL")}
        if unsealed := len(ended - sealed):
            self.report.warnings.append(
                f"recordings: {unsealed} ended sessions have no sealed recording (ended by a crash or before sealing)"
            )

    def recording_problem(self, sealed: str, sha256: str, size: int) -> str:
        """A sealed file, wherever it now lives: in the store's chunks (sealed there, or moved
        there by `hoop migrate`), or as a file (where it was sealed, or in recordings_dir after
        a migration out of a shared store)."""
        path = Path(sealed)
        name = path.name  # a file's name, whether sealed as a path or as a chunk name
        if self.store.shared or sealed.startswith(STORE_PREFIX):
            actual = stored_size(self.store, name) if self.store.shared else None
            if actual is not None:
                digest = digest_chunks(self.store, name, limit=size)
                assert digest is not None
                return _compare(actual, digest[0], sha256, size)
            if self.recordings_dir is None or self.store.shared:
                return "missing"
            path = self.recordings_dir / name
        elif not path.exists() and self.recordings_dir is not None and (self.recordings_dir / path.name).exists():
            path = self.recordings_dir / path.name
        return recording_problem(path, sha256, size)


def _compare(actual: int, digest: str, sha256: str, size: int) -> str:
    if actual < size:
        return f"truncated to {actual} of {size} bytes"
    if digest != sha256:
        return "changed since it was sealed"
    if actual > size:
        return f"{actual - size} bytes appended after it was sealed"
    return ""


def recording_problem(path: Path, sha256: str, size: int) -> str:
    try:
        actual = path.stat().st_size
        digest, _ = digest_file(path, limit=size)
    except FileNotFoundError:
        return "missing"
    return _compare(actual, digest, sha256, size)


def verify(
    store: Store,
    checkpoints: Path,
    key_path: Path,
    *,
    pinned_key: Ed25519PublicKey | None = None,
    expected: audit.Head | None = None,
    recordings: bool = False,
    recordings_dir: Path | None = None,
) -> Report:
    v = Verifier(store, recordings_dir)
    v.check_chain()
    key, source = pinned_key, "pinned with --key"
    if key is None:
        source = f"from {key_path}"
        try:
            key = load_key(key_path).public_key()
        except HoopError as exc:
            source = str(exc)
    v.check_checkpoints(checkpoints, key, source)
    if expected is not None:
        v.check_expected(expected)
    if recordings:
        v.check_recordings()
    return v.report
