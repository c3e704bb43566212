"""The gateway's Prometheus metrics, in a registry of its own (several gateways can run in one
process, as tests do), served by `http_status` at /metrics.

Counters move on events the journal sees anyway (`Journal.on_audit`, `Journal.on_statement`):
one dictionary lookup and one increment per statement, nothing per row. What is a state
rather than an event (sessions open, approvals waiting, the journal's backlog) is read when
scraped, so it costs nothing between scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hoop.core.approvals import Approvals
from hoop.core.audit import AuditEvent
from hoop.core.store.journal import Journal
from hoop.core.store.records import StatementRecord
from hoop.core.store.session_log import SessionLog


class Services(Protocol):
    """What the metrics read of the gateway's services (services.py, which builds them)."""

    journal: Journal
    approvals: Approvals
    refusing: str

    @property
    def live(self) -> dict[int, Any]: ...


# Login failures by class of reason: a bounded label set (the reason's text is in the log).
LOGIN_FAILURES = {
    "login.failure": "credential",
    "login.throttled": "throttled",
    "login.preauth_refused": "preauth",
    "login.protocol_error": "protocol",
    "oidc.login_failure": "credential",
}
APPROVAL_ENDINGS = frozenset({"approved", "denied", "expired", "cancelled", "abandoned"})
DECISION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600)
CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class GatewayMetrics:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # Statements by decision: plain integers, bumped on the event loop's data path (a
        # prometheus_client Counter takes a lock per increment) and exported when scraped.
        self.statements: dict[str, int] = {}
        self.login_failures = Counter(
            "hoop_login_failures", "Refused logins, by door and class of reason", ["door", "reason"], registry=registry
        )
        self.upstream_failures = Counter(
            "hoop_upstream_failures", "Failed upstream logins, by connection", ["connection"], registry=registry
        )
        self.decision_seconds = Histogram(
            "hoop_approval_decision_seconds",
            "Time from a hold's request to its decision (or expiry)",
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self.upstream_connect = Histogram(
            "hoop_upstream_connect_seconds",
            "Time to connect and log in upstream, by door and connection",
            ["door", "connection"],
            buckets=CONNECT_BUCKETS,
            registry=registry,
        )
        registry.register(_StateCollector(services, self.statements))
        self._requested: dict[int, float] = {}  # approval id -> when it was requested
        services.approvals.listeners.append(self._approval)

    # -- journal observers ------------------------------------------------------------------------

    def finished(self, session: SessionLog, record: StatementRecord) -> None:
        statements = self.statements
        statements[record.decision] = statements.get(record.decision, 0) + 1

    def audited(self, event: AuditEvent) -> None:
        action = event.action
        if (reason := LOGIN_FAILURES.get(action)) is not None:
            if action == "login.failure" and event.detail and event.detail.get("reason") == self.services.refusing:
                reason = "unavailable"  # refused while records cannot be stored
            # A throttled report stands for several attempts (one event per address per second).
            attempts = (event.detail or {}).get("attempts", 1) if action == "login.throttled" else 1
            self.login_failures.labels(event.target or "-", reason).inc(attempts if isinstance(attempts, int) else 1)
        elif action == "upstream.failure":
            self.upstream_failures.labels(event.target).inc()

    def _approval(self, event: str, approval_id: int) -> None:
        if event == "request":
            self._requested[approval_id] = time.monotonic()
        elif event in APPROVAL_ENDINGS and (since := self._requested.pop(approval_id, None)) is not None:
            self.decision_seconds.observe(time.monotonic() - since)

    # -- doors ----------------------------------------------------------------------------------

    def upstream_connected(self, door: str, connection: str, seconds: float) -> None:
        self.upstream_connect.labels(door, connection).observe(seconds)


class _StateCollector(Collector):
    """What is read at scrape time from the gateway's live state."""

    def __init__(self, services: Services, statements: dict[str, int]) -> None:
        self.services = services
        self.statements = statements

    def collect(self) -> Iterator[Metric]:
        services = self.services
        sessions = GaugeMetricFamily(
            "hoop_sessions_open", "Sessions open, by door and connection", labels=["door", "connection"]
        )
        counts: dict[tuple[str, str], int] = {}
        for live in list(services.live.values()):
            key = (live.protocol, live.connection)
            counts[key] = counts.get(key, 0) + 1
        for (door, connection), n in sorted(counts.items()):
            sessions.add_metric([door, connection], n)
        yield sessions
        judged = CounterMetricFamily("hoop_statements", "Statements judged, by decision", labels=["decision"])
        for decision, n in sorted(dict(self.statements).items()):
            judged.add_metric([decision], n)
        yield judged
        yield GaugeMetricFamily(
            "hoop_approvals_waiting", "Held statements waiting for a decision", value=len(services.approvals.pending)
        )
        health = services.journal.health()
        yield GaugeMetricFamily(
            "hoop_journal_records_waiting", "Records not yet stored by the journal", value=health.waiting
        )
        yield GaugeMetricFamily(
            "hoop_recording_healthy",
            "1 while records are being stored, 0 while they cannot be",
            value=1 if health.healthy else 0,
        )
        yield CounterMetricFamily(
            "hoop_journal_write_failures",
            "Batches the journal writer could not store (each retry counts)",
            value=services.journal.write_failures,
        )
