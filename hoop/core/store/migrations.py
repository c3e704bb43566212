"""Numbered schema migrations. Append new ones; never edit one that has shipped.

Each is (version, SQLite text, PostgreSQL text): the same tables and columns in each engine's
own types (PostgreSQL: DOUBLE PRECISION for unix times, where REAL would be 4 bytes; BIGINT;
BYTEA; the reserved word `user` quoted). tests/core/test_store_schema.py checks that both
engines end with the same tables and columns.
"""

from __future__ import annotations

_SQLITE: list[tuple[int, str]] = [
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
    (
        3,
        # Several gateways on one store: which gateway carries a session or holds a request,
        # each gateway's heartbeat, blocks of session ids, recordings kept in the store.
        """
        ALTER TABLE sessions ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
        ALTER TABLE approvals ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
        CREATE INDEX sessions_open ON sessions(gateway, ended);
        CREATE TABLE gateways (
            name TEXT PRIMARY KEY,
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER NOT NULL DEFAULT 0,
            started REAL NOT NULL,
            heartbeat REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'up'
        );
        CREATE TABLE id_blocks (
            name TEXT PRIMARY KEY,
            next INTEGER NOT NULL
        );
        CREATE TABLE recording_chunks (
            session_id INTEGER NOT NULL,
            file TEXT NOT NULL,
            seq INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (session_id, file, seq)
        );
        """,
    ),
    (
        6,
        # The grant each approval so far asked for (JSON, in the order of `decisions`): a request
        # can gather its approvals through several gateways, so they are kept in the store.
        "ALTER TABLE approvals ADD COLUMN grant_asks TEXT NOT NULL DEFAULT '[]'",
    ),
]

_POSTGRESQL: dict[int, str] = {
    1: """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            groups TEXT NOT NULL DEFAULT '[]',
            source TEXT NOT NULL DEFAULT 'local',
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            "user" TEXT NOT NULL,
            hash TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            expires DOUBLE PRECISION NOT NULL,
            revoked DOUBLE PRECISION,
            note TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX tokens_user ON tokens("user");
        CREATE TABLE sessions (
            id BIGINT PRIMARY KEY,
            "user" TEXT NOT NULL,
            connection TEXT NOT NULL,
            protocol TEXT NOT NULL,
            client_addr TEXT NOT NULL DEFAULT '',
            started DOUBLE PRECISION NOT NULL,
            ended DOUBLE PRECISION,
            status TEXT NOT NULL DEFAULT 'open',
            statements BIGINT NOT NULL DEFAULT 0,
            blocked BIGINT NOT NULL DEFAULT 0,
            held BIGINT NOT NULL DEFAULT 0,
            bytes_in BIGINT NOT NULL DEFAULT 0,
            bytes_out BIGINT NOT NULL DEFAULT 0,
            recording TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX sessions_started ON sessions(started);
        CREATE TABLE statements (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            session_id BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            started DOUBLE PRECISION NOT NULL,
            duration_ms DOUBLE PRECISION,
            text TEXT NOT NULL,
            decision TEXT NOT NULL DEFAULT 'allow',
            rule TEXT NOT NULL DEFAULT '',
            rows BIGINT,
            error TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX statements_session ON statements(session_id, seq);
        CREATE TABLE audit (
            id BIGINT PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE TABLE approvals (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            session_id BIGINT NOT NULL,
            "user" TEXT NOT NULL,
            connection TEXT NOT NULL,
            statement TEXT NOT NULL,
            rule TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            approvers TEXT NOT NULL DEFAULT '[]',
            required BIGINT NOT NULL DEFAULT 1,
            status TEXT NOT NULL DEFAULT 'pending',
            created DOUBLE PRECISION NOT NULL,
            expires DOUBLE PRECISION NOT NULL,
            decided DOUBLE PRECISION,
            decisions TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX approvals_status ON approvals(status);
        CREATE TABLE grants (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            "user" TEXT NOT NULL,
            connection TEXT NOT NULL,
            rule TEXT NOT NULL,
            granted_by TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            expires DOUBLE PRECISION NOT NULL,
            approval_id BIGINT
        );
        CREATE TABLE rules (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            version BIGINT NOT NULL,
            body TEXT NOT NULL,
            author TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            deleted BIGINT NOT NULL DEFAULT 0,
            UNIQUE(kind, name, version)
        );
        CREATE TABLE host_keys (
            connection TEXT NOT NULL,
            host TEXT NOT NULL,
            port BIGINT NOT NULL,
            key TEXT NOT NULL,
            first_seen DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (connection, host, port)
        );
    """,
    2: "ALTER TABLE statements ADD COLUMN text_bytes BYTEA",
    3: """
        ALTER TABLE sessions ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
        ALTER TABLE approvals ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
        CREATE INDEX sessions_open ON sessions(gateway, ended);
        CREATE TABLE gateways (
            name TEXT PRIMARY KEY,
            host TEXT NOT NULL DEFAULT '',
            pid BIGINT NOT NULL DEFAULT 0,
            started DOUBLE PRECISION NOT NULL,
            heartbeat DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL DEFAULT 'up'
        );
        CREATE TABLE id_blocks (
            name TEXT PRIMARY KEY,
            next BIGINT NOT NULL
        );
        CREATE TABLE recording_chunks (
            session_id BIGINT NOT NULL,
            file TEXT NOT NULL,
            seq BIGINT NOT NULL,
            data BYTEA NOT NULL,
            PRIMARY KEY (session_id, file, seq)
        );
    """,
    6: "ALTER TABLE approvals ADD COLUMN grant_asks TEXT NOT NULL DEFAULT '[]'",
}

MIGRATIONS: list[tuple[int, str, str]] = [(version, text, _POSTGRESQL[version]) for version, text in _SQLITE]
