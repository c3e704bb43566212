"""What a config reload reports: the changes by name, and what only a restart applies."""

from __future__ import annotations

from pathlib import Path

from hoop.core.config import Config, parse_config
from hoop.server.reload import describe_changes, restart_only_changes


def config(tmp_path: Path, *, users: list[str], infile: bool = False, port: int = 15432) -> Config:
    raw = {
        "gateway": {"data_dir": str(tmp_path / "data")},
        "listen": {"postgres": f"127.0.0.1:{port}"},
        "users": [{"name": u, "groups": ["dev"]} for u in users],
        "connections": [
            {"name": "my", "type": "mysql", "host": "127.0.0.1", "username": "root", "allow_local_infile": infile}
        ],
    }
    return parse_config(raw, tmp_path / "hoop.toml")


def test_changes_are_named(tmp_path: Path) -> None:
    old, new = config(tmp_path, users=["alice", "bob"]), config(tmp_path, users=["alice", "carol"], infile=True)
    assert describe_changes(old, new) == ["user carol added", "user bob removed", "connection my changed"]
    assert describe_changes(old, old) == []


def test_listen_addresses_and_local_infile_need_a_restart(tmp_path: Path) -> None:
    old = config(tmp_path, users=["alice"])
    assert restart_only_changes(old, config(tmp_path, users=["bob"])) == []
    assert restart_only_changes(old, config(tmp_path, users=["alice"], port=1)) == ["[listen]"]
    infile = restart_only_changes(old, config(tmp_path, users=["alice"], infile=True))
    assert len(infile) == 1 and infile[0].startswith("allow_local_infile")
    assert restart_only_changes(config(tmp_path, users=["alice"], infile=True), old) == []
