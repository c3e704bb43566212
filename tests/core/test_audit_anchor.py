"""The audit chain anchored outside the store: heads, signed checkpoints, where they may live.

The end-to-end proofs (a real gateway, the real `hoop audit verify`) are in
tests/e2e/test_audit_anchor.py; here the pieces are run directly on a real store.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoop.core import audit, audit_anchor
from hoop.core.config import load_config
from hoop.core.errors import ConfigError
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store


@pytest.fixture
def store(store_target: Path | Secret, tmp_path: Path) -> Iterator[Store]:
    (tmp_path / "data").mkdir(mode=0o700)
    s = open_store(store_target)
    for i in range(5):
        audit.record(s, "alice", "statement", "pg", text=f"SELECT {i}")
    yield s
    s.close()


@pytest.fixture
def anchor(store: Store, tmp_path: Path) -> Iterator[audit_anchor.Anchor]:
    key = tmp_path / "data" / "audit-checkpoint.key"
    audit_anchor.ensure_key(key)
    settings = audit_anchor.AnchorSettings(key, tmp_path / "checkpoints.jsonl", every_events=1000, interval=3600)
    a = audit_anchor.Anchor(store, settings)
    yield a
    a.close()


def test_head_is_count_and_hash_and_parses_back(store: Store) -> None:
    head = audit.head(store)
    assert head.count == 5 and head == audit.verify(store).head
    assert audit.Head.parse(str(head)) == head
    for bad in ("5", "5:abc", "x:" + "0" * 64, "5:" + "g" * 64):
        with pytest.raises(ValueError, match="COUNT:HASH"):
            audit.Head.parse(bad)


def test_verify_since_a_head_checks_only_what_extends_it(store: Store) -> None:
    head = audit.head(store)
    audit.record(store, "bob", "session.kill", "pg", reason="x")
    later = audit.verify(store, since=head)
    assert later.ok and later.checked == 1 and later.head == audit.head(store)

    store.execute("DELETE FROM audit WHERE id >= 5")
    gone = audit.verify(store, since=head)
    assert not gone.ok and gone.bad_id == 5 and "gone" in gone.problem


def test_checkpoint_signature_covers_every_field(tmp_path: Path) -> None:
    key = audit_anchor.ensure_key(tmp_path / "k")
    cp = audit_anchor.Checkpoint.sign(key, audit.Head(7, "a" * 64), 1764381234.0)
    assert cp.time == "2025-11-29T01:53:54Z" and cp.key == audit_anchor.key_id(key.public_key())
    parsed = audit_anchor.Checkpoint.from_line(cp.line())
    assert parsed == cp and parsed.signed_by(key.public_key())
    for field, value in (("count", 8), ("head", "b" * 64), ("time", "2030-01-01T00:00:00Z")):
        forged = json.loads(cp.line()) | {field: value}
        assert not audit_anchor.Checkpoint.from_line(json.dumps(forged)).signed_by(key.public_key())
    other = audit_anchor.ensure_key(tmp_path / "other")
    assert not cp.signed_by(other.public_key())


def test_key_is_private_to_the_gateway_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "audit-checkpoint.key"
    first = audit_anchor.ensure_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = audit_anchor.ensure_key(path)
    assert audit_anchor.public_text(again.public_key()) == audit_anchor.public_text(first.public_key())
    text = audit_anchor.public_text(first.public_key())
    assert audit_anchor.key_id(audit_anchor.parse_public(text)) == audit_anchor.key_id(first.public_key())


def test_anchor_signs_the_head_once_and_resumes_from_its_file(store: Store, anchor: audit_anchor.Anchor) -> None:
    cp = anchor.checkpoint()
    assert cp is not None and cp.at == audit.head(store)
    assert anchor.checkpoint() is None  # nothing new: no second line
    lines = anchor.settings.checkpoint_file.read_text().splitlines()
    assert [audit_anchor.Checkpoint.from_line(line) for line in lines] == [cp]
    resumed = audit_anchor.last_checkpoint(anchor.settings.checkpoint_file, anchor.key.public_key())
    assert resumed == cp


def test_linked_checks_the_links_after_a_head_inside_sqlite(store: Store) -> None:
    head = audit.head(store)
    for i in range(3):
        audit.record(store, "bob", "statement", "pg", text=f"SELECT {i}")
    later = audit.linked(store, since=head)
    assert later.ok and later.checked == 3 and later.head == audit.head(store)
    assert audit.linked(store).ok and audit.linked(store).checked == 8

    store.execute("DELETE FROM audit WHERE id = 7")  # a hole after the head
    holed = audit.linked(store, since=head)
    assert not holed.ok and "gaps" in holed.problem
    store.execute("UPDATE audit SET id = 7 WHERE id = 8")  # closed up: the link to 6 is not its hash
    relinked = audit.linked(store, since=head)
    assert not relinked.ok and relinked.bad_id == 7 and "link" in relinked.problem


def test_anchor_never_signs_a_chain_that_no_longer_extends_its_checkpoint(
    store: Store, anchor: audit_anchor.Anchor, caplog: pytest.LogCaptureFixture
) -> None:
    signed = anchor.checkpoint()
    assert signed is not None
    store.execute("DELETE FROM audit WHERE id >= 4")  # the newest two, then two new ones in their place
    for i in range(2):
        audit.record(store, "alice", "statement", "pg", text=f"SELECT {i}")
    assert audit.verify(store).ok  # the chain alone cannot tell
    assert anchor.checkpoint() is None
    assert "no checkpoint signed" in caplog.text and "event 5" in caplog.text
    assert len(anchor.settings.checkpoint_file.read_text().splitlines()) == 1


def _config(tmp_path: Path, settings: str) -> Path:
    path = tmp_path / "hoop.toml"
    path.write_text(f'[gateway]\ndata_dir = "state"\n{settings}\n')
    return path


def test_checkpoint_file_defaults_beside_data_dir(tmp_path: Path) -> None:
    gw = load_config(_config(tmp_path, "")).gateway
    assert gw.checkpoint_file == tmp_path / "audit-checkpoints.jsonl"
    assert gw.checkpoint_key == tmp_path / "state" / "audit-checkpoint.key"
    assert (gw.audit_checkpoint_events, gw.audit_checkpoint_interval) == (1000, 60.0)
    chosen = load_config(_config(tmp_path, 'audit_checkpoint_file = "/var/log/hoop/cp.jsonl"')).gateway
    assert chosen.checkpoint_file == Path("/var/log/hoop/cp.jsonl")


@pytest.mark.parametrize("where", ["state/checkpoints.jsonl", "./state/../state/x/cp.jsonl", "state"])
def test_checkpoint_file_inside_data_dir_is_refused(tmp_path: Path, where: str) -> None:
    with pytest.raises(ConfigError, match="audit_checkpoint_file.*outside the store"):
        load_config(_config(tmp_path, f'audit_checkpoint_file = "{where}"'))


def test_checkpoint_file_behind_a_symlink_into_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "logs").symlink_to(tmp_path / "state")
    with pytest.raises(ConfigError, match="inside data_dir"):
        load_config(_config(tmp_path, 'audit_checkpoint_file = "logs/cp.jsonl"'))


def test_checkpoint_thresholds_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="audit_checkpoint_events"):
        load_config(_config(tmp_path, "audit_checkpoint_events = 0"))
    with pytest.raises(ConfigError, match="audit_checkpoint_interval"):
        load_config(_config(tmp_path, "audit_checkpoint_interval = -1"))
