"""`[limits]`: parsing (unknown keys, ranges, non-finite numbers) and the login back-off."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoop.core.config import load_config
from hoop.core.errors import ConfigError
from hoop.core.limits import GIB, Limits, LoginThrottle, source_of

REPO = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, table: str) -> Limits:
    path = tmp_path / "hoop.toml"
    path.write_text(f"[gateway]\ndata_dir = 'd'\n\n[limits]\n{table}\n")
    return load_config(path).limits


def test_defaults_when_the_table_is_absent(tmp_path: Path) -> None:
    path = tmp_path / "hoop.toml"
    path.write_text("[gateway]\ndata_dir = 'd'\n")
    limits = load_config(path).limits
    assert limits == Limits()
    assert limits.sessions_per_user == 20 and limits.recording_bytes_per_session == GIB


def test_the_repository_example_writes_out_every_default() -> None:
    text = (REPO / "hoop.toml").read_text()
    assert load_config(REPO / "hoop.toml").limits == Limits()
    for name in Limits.__dataclass_fields__:
        assert f"\n{name} = " in text, name


def test_values_are_read(tmp_path: Path) -> None:
    limits = _load(tmp_path, "sessions_per_user = 3\npreauth_timeout = 2.5\nlogin_failure_window = 30")
    assert (limits.sessions_per_user, limits.preauth_timeout, limits.login_failure_window) == (3, 2.5, 30.0)


@pytest.mark.parametrize(
    ("line", "key", "problem"),
    [
        ("sesions_per_user = 3", "limits.sesions_per_user", "unknown key"),
        ("sessions_per_user = 0", "limits.sessions_per_user", "between 1 and"),
        ("sessions_per_user = 2.5", "limits.sessions_per_user", "an integer"),
        ("sessions_per_user = true", "limits.sessions_per_user", "an integer"),
        ("preauth_timeout = inf", "limits.preauth_timeout", "a number of seconds"),
        ("preauth_timeout = nan", "limits.preauth_timeout", "a number of seconds"),
        ("login_backoff_max = -1", "limits.login_backoff_max", "between 1 and"),
        ("pty_max_cols = 1000000", "limits.pty_max_cols", "between 20 and"),
        ("recording_bytes_per_session = '1G'", "limits.recording_bytes_per_session", "an integer"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, line: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, line)
    assert err.value.key == key and problem in err.value.problem


def test_limits_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "hoop.toml"
    path.write_text("limits = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "limits"


def _throttle(per_user: int = 3, per_source: int = 5) -> LoginThrottle:
    return LoginThrottle(
        Limits(login_failures_per_user=per_user, login_failures_per_source=per_source, login_failure_window=60)
    )


def test_a_user_is_refused_after_the_limit_and_the_wait_doubles() -> None:
    t = _throttle()
    for i in range(2):
        t.failed("alice", "10.0.0.1", 100.0 + i)
        assert t.wait("alice", "10.0.0.1", 100.0 + i) == 0
    t.failed("alice", "10.0.0.1", 102.0)
    assert t.wait("alice", "10.0.0.1", 102.0) == pytest.approx(1.0)
    assert t.wait("alice", "10.0.0.2", 102.0) == pytest.approx(1.0)  # per user, whatever the source
    assert t.wait("bob", "10.0.0.2", 102.0) == 0
    t.failed("alice", "10.0.0.1", 103.5)  # tried again after the wait, failed again
    assert t.wait("alice", "10.0.0.1", 103.5) == pytest.approx(2.0)
    t.failed("alice", "10.0.0.1", 106.0)
    assert t.wait("alice", "10.0.0.1", 106.0) == pytest.approx(4.0)


def test_the_wait_is_capped_and_the_episode_ends_after_a_quiet_window() -> None:
    t = LoginThrottle(Limits(login_failures_per_user=1, login_failure_window=10, login_backoff_max=5))
    now = 0.0
    for _ in range(8):
        t.failed("alice", "s", now)
        now += t.wait("alice", "s", now)
    assert t.wait("alice", "s", now - 0.001) <= 5
    t.failed("alice", "s", now)
    assert t.wait("alice", "s", now) == pytest.approx(5)
    now += 5 + 10 + 0.1  # the block ends, then a whole window without failures
    assert t.wait("alice", "s", now) == 0
    assert not t.users  # forgotten


def test_a_source_is_refused_for_every_user_after_its_limit() -> None:
    t = _throttle(per_user=100, per_source=4)
    for i, user in enumerate(["a", "b", "c", "d"]):
        t.failed(user, "10.0.0.9", 50.0 + i * 0.1)
    assert t.wait("e", "10.0.0.9", 50.5) > 0
    assert t.wait("e", "10.0.0.8", 50.5) == 0


def test_a_success_forgets_only_that_user_from_that_source() -> None:
    t = _throttle(per_user=3, per_source=10)
    t.failed("alice", "10.0.0.1", 1.0)
    t.failed("alice", "10.0.0.2", 1.0)
    t.failed("mallory", "10.0.0.2", 1.0)
    t.succeeded("alice", "10.0.0.1", 1.0)  # alice from .1: the failures from .2 stay
    t.failed("alice", "10.0.0.2", 2.0)
    assert t.wait("alice", "10.0.0.2", 2.0) == 0  # 2 failures of alice (from .2) after the success
    t.failed("alice", "10.0.0.2", 2.5)
    assert t.wait("alice", "10.0.0.3", 2.5) > 0
    assert t.wait("alice", "10.0.0.1", 2.5) == 0  # where alice logged in: not locked out by .2
    # A guesser's own successful login does not reset its source's record of other users.
    t2 = _throttle(per_user=100, per_source=3)
    t2.failed("bob", "10.0.0.5", 1.0)
    t2.failed("carol", "10.0.0.5", 1.0)
    t2.succeeded("mallory", "10.0.0.5", 1.0)
    t2.failed("dave", "10.0.0.5", 1.5)
    assert t2.wait("erin", "10.0.0.5", 1.5) > 0


def test_failing_in_a_users_name_does_not_lock_them_out_where_they_log_in() -> None:
    t = _throttle(per_user=3, per_source=1000)
    t.succeeded("alice", "10.0.0.1", 0.0)
    now = 100.0
    for i in range(50):  # mallory fails as alice from elsewhere, each time the wait is over
        now += t.wait("alice", f"10.0.1.{i}", now) + 0.1
        t.failed("alice", f"10.0.1.{i}", now)
    assert t.wait("alice", "10.0.1.77", now) > 0  # a stranger's address is held back
    assert t.wait("alice", "10.0.0.1", now) == 0  # alice's own is not
    later = 3 * 86400.0  # more than a day since alice logged in from .1: a stranger's again
    for i in range(3):
        t.failed("alice", f"10.0.2.{i}", later + i * 0.1)
    assert t.wait("alice", "10.0.0.1", later + 0.5) > 0


def test_failures_leave_the_window() -> None:
    t = _throttle(per_user=3)
    t.failed("alice", "s", 0.0)
    t.failed("alice", "s", 1.0)
    t.failed("alice", "s", 61.5)  # the first two are older than the window
    assert t.wait("alice", "s", 61.5) == 0


def test_source_of() -> None:
    assert source_of("127.0.0.1:5432") == "127.0.0.1"
    assert source_of("::1:40000") == "::1"
    assert source_of("local") == "local"


def test_names_tried_once_do_not_stay_in_memory() -> None:
    throttle = LoginThrottle(Limits(login_failure_window=60))
    for i in range(20_000):  # one failure each for many made-up names, a minute apart in batches
        throttle.failed(f"guess{i}", "10.0.0.1" if i % 2 else "10.0.0.2", now=float(i // 100) * 61)
    assert len(throttle.users) < 3000 and len(throttle.sources) <= 2


def test_a_long_attack_keeps_the_wait_at_its_cap() -> None:
    throttle = LoginThrottle(Limits(login_failures_per_source=1, login_backoff_max=300))
    now = 0.0
    for i in range(3000):  # a failure each time the wait is over, for ten days
        now += throttle.wait(f"u{i}", "10.0.0.1", now)
        throttle.failed(f"u{i}", "10.0.0.1", now)
    assert now > 10 * 86400 and throttle.wait("anyone", "10.0.0.1", now) == 300
