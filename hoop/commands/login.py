"""`hoop login`, `hoop logout`, `hoop env CONNECTION`, `hoop psql CONNECTION [psql args]`.

`hoop login` signs in at the `[auth.oidc]` provider of the config (device flow by default
on headless or ssh sessions, the browser flow with PKCE when a display is at hand, or as
chosen with --device / --browser) and stores the credential privately (see
hoop.core.oidc_login). The ID token is the password the gateway's doors accept, so:

    eval "$(hoop env pg)"   # PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, PGPASSWORD
    psql                    # connects through the gateway as you
    hoop psql pg -c 'select 1'   # the same in one step (psql runs with the credential in its env)

For a MySQL connection `hoop env` prints MYSQL_HOST, MYSQL_TCP_PORT and MYSQL_PWD and the
client command to run. An expired ID token is renewed with the refresh token on the fly.
The gateway address is --host/--port, else $HOOP_GATEWAY_HOST, else the config's [listen].
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any

from hoop.core.config import Config
from hoop.core.errors import HoopError


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    login = sub.add_parser("login", parents=[common], help="log in at the OIDC provider and store the credential")
    how = login.add_mutually_exclusive_group()
    how.add_argument("--device", action="store_true", help="device flow: print a URL and a code (headless, ssh)")
    how.add_argument("--browser", action="store_true", help="browser flow with PKCE and a loopback redirect")
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the browser (default 300)")

    sub.add_parser("logout", parents=[common], help="forget the stored OIDC credential")

    env = sub.add_parser("env", parents=[common], help="print shell exports to reach CONNECTION as yourself")
    env.add_argument("connection")
    _address_options(env)

    psql = sub.add_parser("psql", parents=[common], help="run psql through the gateway with your credential")
    psql.add_argument("connection")
    _address_options(psql)
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="passed on to psql")
    return {"login": cmd_login, "logout": cmd_logout, "env": cmd_env, "psql": cmd_psql}


def _address_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="gateway host (default $HOOP_GATEWAY_HOST or [listen])")
    p.add_argument("--port", type=int, default=None, help="gateway port (default from [listen])")


def _oidc(config: Config) -> Any:
    if config.oidc is None:
        raise HoopError(f"{config.path} has no [auth.oidc] section: there is no identity provider to log in at")
    return config.oidc


def _wants_browser(args: argparse.Namespace) -> bool:
    if args.browser or args.device:
        return bool(args.browser)
    graphical = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin")
    return graphical and not os.environ.get("SSH_CONNECTION")


def cmd_login(args: argparse.Namespace, config: Config) -> int:
    from hoop.core.oidc_login import browser_login, device_login, save_credential

    cfg = _oidc(config)
    if _wants_browser(args):
        import webbrowser

        def open_url(url: str) -> None:
            print(f"Opening your browser to log in. If it does not open, visit:\n  {url}", file=sys.stderr, flush=True)
            webbrowser.open(url)

        tokens = browser_login(cfg, open_url, timeout=args.timeout)
    else:

        def prompt(auth: Any) -> None:
            print(f"To log in, visit {auth.verification_uri} and enter the code {auth.user_code}", file=sys.stderr)
            if auth.verification_uri_complete:
                print(f"  (or open {auth.verification_uri_complete})", file=sys.stderr)
            print("Waiting for approval...", file=sys.stderr, flush=True)

        tokens = device_login(cfg, prompt)
    path = save_credential(cfg, tokens)
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(tokens.expires_at))
    groups = ", ".join(tokens.groups) or "none"
    print(
        f"logged in as {tokens.user} (groups: {groups}); credential saved to {path}, valid until {until}"
        + (" (renewed automatically)" if tokens.refresh_token else "")
    )
    return 0


def cmd_logout(args: argparse.Namespace, config: Config) -> int:
    from hoop.core.oidc_login import credentials_path, forget_credential

    if forget_credential(_oidc(config)):
        print(f"logged out: credential removed from {credentials_path()}")
    else:
        print("not logged in")
    return 0


def _gateway_address(args: argparse.Namespace, config: Config, kind: str) -> tuple[str, int]:
    listen = getattr(config.listen, kind)
    host = args.host or os.environ.get("HOOP_GATEWAY_HOST") or (listen[0] if listen else None)
    port = args.port or (listen[1] if listen else None)
    if host is None or port is None:
        raise HoopError(f"no gateway address for {kind}: pass --host and --port or set [listen] {kind}")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return host, port


def client_env(args: argparse.Namespace, config: Config) -> tuple[str, dict[str, str]]:
    """(connection type, environment variables) that let the client reach CONNECTION as us."""
    from hoop.core.oidc_login import current_credential

    cfg = _oidc(config)
    conn = config.connection(args.connection)
    kind = conn.type if conn is not None else "postgres"
    if kind == "ssh":
        raise HoopError(
            f"{args.connection} is an ssh connection: ssh to the gateway and log in with the "
            "device code it shows (keyboard-interactive), or use your SSH key"
        )
    tokens = current_credential(cfg)
    host, port = _gateway_address(args, config, kind)
    if kind == "mysql":
        return kind, {
            "MYSQL_HOST": host,
            "MYSQL_TCP_PORT": str(port),
            "MYSQL_PWD": tokens.id_token,
            "HOOP_USER": tokens.user,
            "HOOP_CONNECTION": args.connection,
        }
    return kind, {
        "PGHOST": host,
        "PGPORT": str(port),
        "PGUSER": tokens.user,
        "PGDATABASE": args.connection,
        "PGSSLMODE": os.environ.get("PGSSLMODE", "require"),
        "PGPASSWORD": tokens.id_token,
    }


def cmd_env(args: argparse.Namespace, config: Config) -> int:
    kind, env = client_env(args, config)
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    if kind == "mysql":
        print(
            f"# then: mariadb --user={shlex.quote(env['HOOP_USER'])} --database={shlex.quote(args.connection)}"
            " --ssl --enable-cleartext-plugin"
        )
    else:
        print("# then: psql")
    return 0


def cmd_psql(args: argparse.Namespace, config: Config) -> int:
    kind, env = client_env(args, config)
    if kind != "postgres":
        raise HoopError(f"{args.connection} is a {kind} connection, not postgres")
    extra = args.psql_args[1:] if args.psql_args[:1] == ["--"] else args.psql_args
    sys.stdout.flush()
    try:
        os.execvpe("psql", ["psql", *extra], {**os.environ, **env})
    except FileNotFoundError:
        raise HoopError("psql is not installed (or not on PATH)") from None
