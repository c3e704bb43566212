"""PostgreSQL server fixtures.

- ``pg_cluster`` (session): a throwaway cluster started with initdb on a free loopback port, TLS on,
  roles ``md5_user`` (md5), ``scram_user`` (scram-sha-256), ``clear_user`` (cleartext password)
  and ``postgres`` (trust). Attributes: host, port, passwords[role], cafile, superuser, psql(sql).
- ``local_pg`` (session): (host, port) of the machine's server on 127.0.0.1:5432 (trust, no TLS).

When a server is missing these skip, except under CI (env ``CI`` set), where they fail.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # make _cluster importable in any import mode

from _cluster import (  # noqa: E402
    LOCAL_HOST,
    LOCAL_PORT,
    Cluster,
    ClusterUnavailable,
    local_server_up,
    start_cluster,
)
from support.servers import missing  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        missing(f"throwaway PostgreSQL cluster unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def local_pg() -> tuple[str, int]:
    if not local_server_up():
        missing(f"no PostgreSQL server on {LOCAL_HOST}:{LOCAL_PORT}")
    return LOCAL_HOST, LOCAL_PORT
