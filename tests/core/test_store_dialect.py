"""The store's SQL is written once, in SQLite's form; PostgreSQL reads the rewrite the same way:
placeholders, a `%` or `?` inside a literal, and the column `user` (a bare `user` in
PostgreSQL is the CURRENT_USER function, and would silently read the role's name)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hoop.core.store.base import Store
from hoop.core.store.dialect import POSTGRESQL, SQLITE


@pytest.mark.parametrize(
    ("sqlite", "postgresql"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("VALUES (:id, :user_name)", "VALUES (%(id)s, %(user_name)s)"),
        ("SELECT (detail)::jsonb ->> 'k', x::text", "SELECT (detail)::jsonb ->> 'k', x::text"),
        ("SELECT 'what?', '50%', ? || '%'", "SELECT 'what?', '50%%', %s || '%%'"),
        ("SELECT 'it''s ? 5%'", "SELECT 'it''s ? 5%%'"),
        ("SELECT user, USER FROM tokens WHERE user = ?", 'SELECT "user", "user" FROM tokens WHERE "user" = %s'),
        ('SELECT x.user, excluded.user, "user" FROM x', 'SELECT x.user, excluded.user, "user" FROM x'),
        ("SELECT users, user_id, username, 'user' FROM users", "SELECT users, user_id, username, 'user' FROM users"),
        ("UPDATE t SET user = :user", 'UPDATE t SET "user" = %(user)s'),
        ("SELECT 1 -- isn't user? 5%\nFROM t WHERE a = ?", "SELECT 1 -- isn't user? 5%%\nFROM t WHERE a = %s"),
        ("SELECT /* user's ? */ user FROM t", 'SELECT /* user\'s ? */ "user" FROM t'),
    ],
)
def test_the_rewrite_for_postgresql(sqlite: str, postgresql: str) -> None:
    assert POSTGRESQL.sql(sqlite) == postgresql
    assert SQLITE.sql(sqlite) == sqlite


def test_literals_with_percent_and_question_marks_come_back_as_written(store: Store) -> None:
    row = store.one("SELECT '50%' AS p, 'what?' AS q, 'it''s' AS s, ? AS v, ? || '%' AS w", ("%s", "a"))
    assert row == {"p": "50%", "q": "what?", "s": "it's", "v": "%s", "w": "a%"}
    assert store.one("SELECT ? AS v -- isn't this 100% ?\n", ("ok",)) == {"v": "ok"}
    named = store.one("SELECT :a AS a, '%(a)s' AS literal", {"a": "x?%"})
    assert named == {"a": "x?%", "literal": "%(a)s"}


def test_user_is_the_column_never_the_database_role(store: Store) -> None:
    upsert = (
        "INSERT INTO tokens(id, user, hash, created, expires) VALUES (?,?,?,?,?) "
        "ON CONFLICT(id) DO UPDATE SET user = excluded.user, hash = excluded.hash"
    )
    store.execute(upsert, ("t1", "alice", "h1", 1.0, 2.0))
    store.execute(upsert, ("t1", "bob", "h2", 1.0, 2.0))
    assert store.query("SELECT user, hash FROM tokens") == [{"user": "bob", "hash": "h2"}]
    assert store.query("SELECT t.user FROM tokens t WHERE t.user = ?", ("bob",)) == [{"user": "bob"}]
    with store.transaction() as tx:
        tx.executemany("UPDATE tokens SET user = :user WHERE id = :id", [{"user": "carol", "id": "t1"}])
        assert tx.execute("SELECT user FROM tokens WHERE id = ?", ("t1",)).fetchone()["user"] == "carol"


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata", ":/usr/share/zoneinfo/Europe/Paris"])
def test_json_text_and_local_minute_read_alike(store: Store, zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Times are searched in this process's local time, whatever the database server's zone."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    d = store.dialect
    store.execute(
        "INSERT INTO audit(id, ts, actor, action, target, detail, prev_hash, hash) "
        "VALUES (1, ?, 'a', 'x', 't', ?, '', '')",
        (0.0, '{"connection": "pg", "n": 3}'),
    )
    row = store.one(
        f"SELECT {d.json_text('detail', 'connection')} AS c, {d.json_text('detail', 'gone')} AS g FROM audit"
    )
    assert row == {"c": "pg", "g": None}
    expected = time.strftime("%Y-%m-%d %H:%M", time.localtime(1_700_000_000))
    assert store.one(f"SELECT {d.local_minute('?')} AS m", (1_700_000_000,)) == {"m": expected}
    summer = time.strftime("%Y-%m-%d %H:%M", time.localtime(1_690_000_000))  # daylight saving in New York
    assert store.one(f"SELECT {d.local_minute('ts + ?')} AS m FROM audit", (1_690_000_000,)) == {"m": summer}


@pytest.fixture(autouse=True)
def _local_time_restored() -> Iterator[None]:
    yield
    time.tzset()  # monkeypatch has put TZ back by now
