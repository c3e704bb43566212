"""Numbered schema migrations. Append new ones; never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            groups TEXT NOT NULL DEFAULT '[]',
            source TEXT NOT NULL DEFAULT 'local',
            created REAL NOT NULL,
            updated REAL NOT NULL
        );
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            user TEXT NOT NULL,
            hash TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            revoked REAL,
            note TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX tokens_user ON tokens(user);
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            user TEXT NOT NULL,
            connection TEXT NOT NULL,
            protocol TEXT NOT NULL,
            client_addr TEXT NOT NULL DEFAULT '',
            started REAL NOT NULL,
            ended REAL,
            status TEXT NOT NULL DEFAULT 'open',
            statements INTEGER NOT NULL DEFAULT 0,
            blocked INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0,
            bytes_in INTEGER NOT NULL DEFAULT 0,
            bytes_out INTEGER NOT NULL DEFAULT 0,
            recording TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX sessions_started ON sessions(started);
        CREATE TABLE statements (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            started REAL NOT NULL,
            duration_ms REAL,
            text TEXT NOT NULL,
            decision TEXT NOT NULL DEFAULT 'allow',
            rule TEXT NOT NULL DEFAULT '',
            rows INTEGER,
            error TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX statements_session ON statements(session_id, seq);
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE TABLE approvals (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL,
            user TEXT NOT NULL,
            connection TEXT NOT NULL,
            statement TEXT NOT NULL,
            rule TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            approvers TEXT NOT NULL DEFAULT '[]',
            required INTEGER NOT NULL DEFAULT 1,
            status TEXT NOT NULL DEFAULT 'pending',
            created REAL NOT NULL,
            expires REAL NOT NULL,
            decided REAL,
            decisions TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX approvals_status ON approvals(status);
        CREATE TABLE grants (
            id INTEGER PRIMARY KEY,
            user TEXT NOT NULL,
            connection TEXT NOT NULL,
            rule TEXT NOT NULL,
            granted_by TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            approval_id INTEGER
        );
        CREATE TABLE rules (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            body TEXT NOT NULL,
            author TEXT NOT NULL,
            created REAL NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            UNIQUE(kind, name, version)
        );
        CREATE TABLE host_keys (
            connection TEXT NOT NULL,
            host TEXT NOT NULL,
            port INTEGER NOT NULL,
            key TEXT NOT NULL,
            first_seen REAL NOT NULL,
            PRIMARY KEY (connection, host, port)
        );
        """,
    ),
    (
        2,
        # The exact bytes of a statement whose text was not UTF-8 (`text` holds them escaped).
        "ALTER TABLE statements ADD COLUMN text_bytes BLOB",
    ),
]
