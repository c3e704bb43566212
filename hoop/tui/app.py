"""`hoop tui`: the approvers' console.

Four areas, one Textual mode each (1 Sessions, 2 Approvals, 3 Rules, 4 Recordings). The app
owns the shared state and hands it *down* as attributes of the area screens (`snapshot`,
`who`, `gateway`); screens send requests *up* by calling `act()`, whose worker talks to the
gateway and posts the outcome back as a message. Workers do all I/O (store reads, control
calls); message handlers on the event loop own the state.

The app never imports hoop.server: history comes from the store, mutations go to the running
gateway's control endpoint (the gateway is the single writer and audits every action).

Text from users and servers is shown inert everywhere (hoop.tui.inert): widgets of
hoop.tui.widgets.plain for strings, `inert()` inside Rich renderables, and notifications
through `notify`, which never reads markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.message_pump import MessagePump
from textual.notifications import SeverityLevel

from hoop.core.roles import RoleSet
from hoop.core.visible import visible
from hoop.tui.data import GatewayLink, History, Snapshot, in_scope, sessions_in_scope

if TYPE_CHECKING:
    from hoop.tui.screens.base import AreaScreen


@dataclass
class Who:
    """The identity the gateway recognised, or why live actions are unavailable."""

    user: str = ""
    groups: tuple[str, ...] = ()
    problem: str = "connecting to the gateway..."
    roles: RoleSet = RoleSet()
    # No identity, and this process reads the store itself (no token, or the gateway is not
    # running): it shows what the store holds; live actions are unavailable anyway.
    reads_store: bool = False

    @property
    def online(self) -> bool:
        return bool(self.user) and not self.problem

    def describe(self) -> str:
        if self.online:
            roles = ", ".join(self.roles.names) or "no role"
            return f"signed in as {self.user} ({', '.join(self.groups) or 'no groups'}) as {roles}"
        return self.problem


class SnapshotReady(Message):
    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class WhoKnown(Message):
    def __init__(self, who: Who) -> None:
        super().__init__()
        self.who = who


class ActionResult(Message):
    """The gateway's answer to one mutation: `ok` with its result, or the error to show."""

    def __init__(self, op: str, params: dict[str, Any], ok: bool, result: Any, error: str) -> None:
        super().__init__()
        self.op, self.params, self.ok, self.result, self.error = op, params, ok, result, error


AREAS = ("sessions", "approvals", "rules", "recordings")


class HoopApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Hoop"
    BINDINGS = [
        Binding("1", "area('sessions')", "Sessions"),
        Binding("2", "area('approvals')", "Approvals"),
        Binding("3", "area('rules')", "Rules"),
        Binding("4", "area('recordings')", "Recordings"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        history: History,
        link: GatewayLink,
        *,
        now: Callable[[], float] = time.time,
        poll: float = 0.5,
        start: str = "sessions",
    ) -> None:
        super().__init__()
        self.history = history
        self.link = link
        self.now = now
        self.poll_interval = poll
        self.start_area = start
        self.who = Who()
        self.snapshot: Snapshot | None = None  # what the caller may see of the store's last snapshot
        self.store_snapshot: Snapshot | None = None
        self.seen_pending: set[int] | None = None
        self.pending_status: dict[int, str] = {}
        self.bells = 0
        self.areas: dict[str, AreaScreen] = {}
        for name in AREAS:
            self.add_mode(name, self._area_factory(name))

    def _area_factory(self, name: str) -> Callable[[], AreaScreen]:
        def make() -> AreaScreen:
            from hoop.tui.screens.approvals import ApprovalsScreen
            from hoop.tui.screens.recordings import RecordingsScreen
            from hoop.tui.screens.rules import RulesScreen
            from hoop.tui.screens.sessions import SessionsScreen

            cls = {
                "sessions": SessionsScreen,
                "approvals": ApprovalsScreen,
                "rules": RulesScreen,
                "recordings": RecordingsScreen,
            }[name]
            screen = self.areas[name] = cls()
            screen.who = self.who
            if self.snapshot is not None:
                screen.snapshot = self.snapshot
            return screen

        return make

    def on_mount(self) -> None:
        self.switch_mode(self.start_area)
        self.identify()
        self.poll()
        if self.poll_interval > 0:
            self.set_interval(self.poll_interval, self.poll)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification is plain text: messages quote names, errors and reasons."""
        super().notify(visible(message), title=visible(title), severity=severity, timeout=timeout, markup=False)

    def action_area(self, name: str) -> None:
        if self.current_mode != name:
            self.switch_mode(name)

    # -- workers: I/O off the event loop ------------------------------------------------------

    @work(thread=True, group="identify")
    def identify(self) -> None:
        from hoop.control_client import ControlError, GatewayUnavailable

        try:
            result = self.link.call("whoami")
            who = Who(result["user"], tuple(result.get("groups", ())), "", RoleSet.from_dict(result))
        except GatewayUnavailable as exc:
            who = Who(problem=str(exc).split(";")[0], reads_store=True)
        except ControlError as exc:
            who = Who(problem=f"the gateway refused this identity: {exc}")
        self.post_message(WhoKnown(who))

    @work(thread=True, exclusive=True, group="poll")
    def poll(self) -> None:
        self.post_message(SnapshotReady(self.history.snapshot(self.now())))

    def act(self, requester: MessagePump, op: str, **params: Any) -> None:
        """Ask the gateway to do something; the outcome arrives at `requester` as ActionResult."""
        self._act(requester, op, params)

    @work(thread=True, group="act")
    def _act(self, requester: MessagePump, op: str, params: dict[str, Any]) -> None:
        from hoop.core.errors import HoopError

        try:
            result = self.link.call(op, **params)
            message = ActionResult(op, params, True, result, "")
        except HoopError as exc:
            message = ActionResult(op, params, False, None, str(exc))
        requester.post_message(message)
        if op in ("approve", "deny", "kill"):
            self.poll()

    # -- handlers: the state lives here ----------------------------------------------------------

    def on_who_known(self, message: WhoKnown) -> None:
        self.who = message.who
        for screen in self.areas.values():
            screen.who = message.who
        if not message.who.online:
            self.notify(message.who.problem, title="Live actions unavailable", severity="warning", timeout=4)
        if self.store_snapshot is not None:  # the lists follow the caller's scope, now known
            self._show(self.store_snapshot)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.store_snapshot = message.snapshot
        self._show(message.snapshot)

    def _show(self, whole: Snapshot) -> None:
        snap = self._scoped(whole)
        if not (self.who.online or self.who.reads_store):  # whose lists these are is not known yet
            for screen in self.areas.values():
                screen.snapshot = snap
            return
        ids = {r["id"] for r in snap.pending}
        if self.seen_pending is not None and ids - self.seen_pending:
            fresh = sorted(ids - self.seen_pending)
            self.bells += 1
            self.bell()
            self.notify(f"approval requested: #{', #'.join(map(str, fresh))}", title="New request")
        # Decisions made elsewhere (another approver, a timeout) show up as they happen.
        for row in snap.decided:
            before = self.pending_status.get(row["id"])
            if before == "pending":
                by = ", ".join(row["decisions"]) or "the gateway"
                self.notify(f"#{row['id']} {row['status']} by {by}", title="Decision")
        self.pending_status = {r["id"]: "pending" for r in snap.pending}
        self.seen_pending = (self.seen_pending or set()) | ids
        self.snapshot = snap
        for screen in self.areas.values():
            screen.snapshot = snap

    def _scoped(self, snap: Snapshot) -> Snapshot:
        """Only the sessions and requests the caller may see (the gateway enforces the same
        for every action): admins and auditors everything, approvers their rules' requests and
        connections' sessions, anyone their own; nothing while the identity is unknown."""
        who = self.who
        if who.reads_store:
            return snap
        return in_scope(snap, who.user if who.online else None, who.roles)

    def scoped_sessions(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Recordings the caller may replay: the same scope as the Sessions list."""
        who = self.who
        if who.reads_store:
            return rows
        return sessions_in_scope(rows, who.user if who.online else None, who.roles)
