"""MySQL's PREPARE replaces a statement of the same name. When the new PREPARE was held and
approved, each later EXECUTE of that name runs the approved body and must be judged by it,
not by the body the name had before (reusing the MySQL door's module fixtures)."""

from __future__ import annotations

import json
import time

import pytest
from e2e.test_mysql_path import _held, _in_thread, connect, gw, maria  # noqa: F401 - fixtures
from support.gateway import GatewayProcess

pytestmark = pytest.mark.needs_mariadb


def _deny_if_held(gateway: GatewayProcess, text: str) -> bool:
    rows = json.loads(gateway.cli("approvals", "--json").stdout or "[]")
    for r in rows:
        if r["status"] == "pending" and r["statement"] == text:
            gateway.cli("deny", str(r["id"]), "--reason", "not again", "--token", gateway.tokens["bob"])  # type: ignore[attr-defined]
            return True
    return False


def test_execute_after_an_approved_re_prepare_is_held_again(gw: GatewayProcess) -> None:  # noqa: F811
    conn = connect(gw)
    cur = conn.cursor()
    cur.execute("DELETE FROM held_t WHERE id = 77")
    cur.execute("PREPARE s FROM 'SELECT 1'")
    text = "PREPARE s FROM 'INSERT INTO held_t VALUES (77)'"
    t, box = _in_thread(lambda: conn.cursor().execute(text))
    gw.cli("approve", str(_held(gw, text)), "--token", gw.tokens["bob"])  # type: ignore[attr-defined]
    t.join(30)
    assert box == {"ok": 0}
    t, box = _in_thread(lambda: conn.cursor().execute("EXECUTE s"))
    deadline = time.monotonic() + 20
    while t.is_alive() and time.monotonic() < deadline and not _deny_if_held(gw, "EXECUTE s"):
        time.sleep(0.1)
    t.join(30)
    cur.execute("SELECT COUNT(*) FROM held_t WHERE id = 77")
    assert cur.fetchone() == (0,), "EXECUTE s inserted the row without a hold"
