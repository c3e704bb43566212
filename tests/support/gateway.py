"""Run the real `hoop serve` as a subprocess with a throwaway config, for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.servers import free_port, port_open

HOOP = [sys.executable, "-m", "hoop.cli"]
Events = list[dict[str, Any]]
ADMIN = "ada"  # the administrator of the test configurations (group ops)


def has_actions(*actions: str) -> Callable[[Events], bool]:
    """A `GatewayProcess.audit` condition: every one of these actions is among the events."""
    return lambda events: set(actions) <= {e["action"] for e in events}


@dataclass
class GatewayProcess:
    root: Path
    config: Path
    ports: dict[str, int]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    outputs: list[str] = field(default_factory=list)  # every CLI output, for canary searches
    tokens: dict[str, str] = field(default_factory=dict)  # user -> token, for tests that issue them once

    @property
    def log_path(self) -> Path:
        return self.root / "gateway.log"

    def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            HOOP + ["serve", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.root,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            if all(port_open("127.0.0.1", p, 0.2) for p in self.ports.values()) and "ready" in self.log():
                return
            time.sleep(0.05)
        raise RuntimeError(f"gateway did not start in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM; sessions a test left open get a moment, then a second SIGTERM ends the
        gateway's grace period (`shutdown_grace`) so that teardown does not wait it out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            HOOP + list(args) + ["-c", str(self.config)],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.root,
            input=input,
            timeout=60,
        )
        self.outputs += [result.stdout, result.stderr]
        if check and result.returncode != 0:
            raise AssertionError(
                f"hoop {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def audit(self, *filters: str, until: Callable[[Events], bool], timeout: float = 10.0) -> Events:
        """`hoop audit --json FILTERS`, read again until `until(events)` holds.

        The gateway writes its journal in batches (every 0.2 s), so an event is in the store
        shortly after the action, not at once; polling keeps tests from guessing a sleep.
        """
        deadline = time.monotonic() + timeout
        while True:
            events: Events = json.loads(self.cli("audit", "--json", *filters).stdout)
            if until(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.1)

    def token(self, user: str, ttl: str = "1h") -> str:
        return self.cli("token", "issue", user, "--ttl", ttl).stdout.strip().splitlines()[-1]

    def admin(self, *args: str, user: str = ADMIN, **kw: Any) -> subprocess.CompletedProcess[str]:
        """`hoop ARGS` as an administrator (a token of `user`, a member of an admin group, in
        HOOP_TOKEN): rule and masking changes go through the gateway and need one."""
        if user not in self.tokens:
            self.tokens[user] = self.token(user)
        env = {**(kw.pop("env", None) or {}), "HOOP_TOKEN": self.tokens[user]}
        return self.cli(*args, env=env, **kw)

    def issue_tokens(self, *users: str) -> None:
        """A token for each of `users`, kept in `tokens`."""
        self.tokens.update({u: self.token(u) for u in users})

    def dsn(self, user: str, token: str, connection: str = "pg", **extra: str) -> str:
        parts = {
            "host": "127.0.0.1",
            "port": str(self.ports["postgres"]),
            "user": user,
            "password": token,
            "dbname": connection,
            "sslmode": "disable",
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def psql(
        self,
        user: str,
        token: str,
        sql: str | None = None,
        *args: str,
        connection: str = "pg",
        input: str | None = None,
        sslmode: str = "disable",
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            "psql",
            f"host=127.0.0.1 port={self.ports['postgres']} user={user} dbname={connection} sslmode={sslmode}",
            "-X",
            "-v",
            "ON_ERROR_STOP=0",
            *args,
        ]
        if sql is not None:
            cmd += ["-c", sql]
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env={**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"},
        )
        self.outputs += [result.stdout, result.stderr]
        return result


def users_toml(users: dict[str, list[str]]) -> str:
    """`[[users]]` entries: each user name with its groups."""
    return "".join(f'\n[[users]]\nname = "{u}"\ngroups = {json.dumps(g)}\n' for u, g in users.items())


ALICE = users_toml({"alice": ["dev"]})  # the one user most tests need
# An admin user and the [roles] table naming its group (append to a config's body).
ADMINS = users_toml({ADMIN: ["ops"]}) + '\n[roles]\nadmin = ["ops"]\nauditor = ["security"]\n'


def write_config(
    root: Path, body: str, *, listen: dict[str, int] | None = None, settings: str = "", recordings: str = "recordings"
) -> GatewayProcess:
    """Write hoop.toml under `root` with free ports for the doors and return a (stopped) gateway;
    `settings` are more lines of its [gateway] table, `recordings` its recordings_dir."""
    ports = listen or {"postgres": free_port()}
    listen_lines = "\n".join(f'{k} = "127.0.0.1:{v}"' for k, v in ports.items())
    text = f"""[gateway]
{settings}data_dir = "data"
recordings_dir = "{recordings}"

[listen]
{listen_lines}

{body}
"""
    config = root / "hoop.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOP_")}
    env["PYTHONUNBUFFERED"] = "1"
    return GatewayProcess(root, config, ports, env)


# The users most end-to-end gateways start with (tests/conftest.py make_gateway), and [roles].
USERS_TOML = """
[[users]]
name = "alice"
groups = ["dev"]

[[users]]
name = "bob"
groups = ["dev", "dba"]

[[users]]
name = "carol"
groups = ["dev", "dba"]

[[users]]
name = "mallory"
groups = ["contractors"]

[[users]]
name = "ada"
groups = ["ops"]

[[users]]
name = "audrey"
groups = ["security"]

[roles]
admin = ["ops"]
auditor = ["security"]
"""
