#!/usr/bin/env bash
# Install everything the test suite needs and run it. Used by the README and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools the tests drive for real: OpenSSH (client and a throwaway sshd as SSH target),
# tmux (interactive clients in a PTY), asciinema (plays recordings), the PostgreSQL and MariaDB
# clients, systemd-analyze (verifies the systemd unit in deploy/). Installed only when missing, so a prepared machine skips apt entirely.
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v asciinema >/dev/null 2>&1 || need+=(asciinema)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)  # checks deploy/hoop.service
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them with apt-get as root)" >&2
    exit 1
  fi
fi
mkdir -p /run/sshd 2>/dev/null || true

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# Quality gates first (seconds): lint and format-check everything, type-check all of hoop/ (strict; pyproject).
.venv/bin/ruff check hoop tests bench
.venv/bin/ruff format --check hoop tests bench
.venv/bin/mypy
exec .venv/bin/pytest "$@"
