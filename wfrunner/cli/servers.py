"""``wfrunner servers``: the embedded Redis and PostgreSQL of ``WFRUNNER_HOME``.

They start on first use and run until ``stop`` (see :mod:`wfrunner.embedded`); these
commands list and stop them without starting anything.
"""

from __future__ import annotations

import typer

from wfrunner import embedded
from wfrunner.cli.app import cli, echo
from wfrunner.servers import redact
from wfrunner.settings import Settings

servers_cli = typer.Typer(
    help=(
        "The embedded Redis and PostgreSQL under WFRUNNER_HOME, started by the first "
        "process that needs them and shared by every wfrunner and celery process of this "
        "machine. They are for one machine: they listen on loopback only; for workers on "
        "several machines set WFRUNNER_REDIS_URL and WFRUNNER_DATABASE_URL."
    ),
    no_args_is_help=True,
)
cli.add_typer(servers_cli, name="servers")

#: the variable that replaces each embedded server
_VARIABLE = {embedded.REDIS: "WFRUNNER_REDIS_URL", embedded.POSTGRES: "WFRUNNER_DATABASE_URL"}


@servers_cli.command("status")
def servers_status() -> None:
    """One line per embedded server: name, running or stopped, pid, port, URL."""
    settings = Settings.from_env()
    configured = {
        embedded.REDIS: settings.redis_url,
        embedded.POSTGRES: settings.database_url,
    }
    servers = embedded.recorded(settings.home)
    for name in (embedded.REDIS, embedded.POSTGRES):
        server = servers.get(name)
        if server is None:
            line = f"{name:<9} not started"
        else:
            state = "running" if server.alive else "stopped"
            line = f"{name:<9} {state:<8} pid {server.pid:<8} port {server.port:<6} {server.url}"
        if configured[name]:
            line += f"  (unused: {_VARIABLE[name]}={redact(configured[name] or '')})"
        echo(line)
    echo(f"home: {settings.home}", err=True)


@servers_cli.command("stop")
def servers_stop() -> None:
    """Stop the embedded servers (stop workers and beat first: they lose their servers)."""
    settings = Settings.from_env()
    stopped = embedded.stop(settings.home)
    for server in stopped:
        echo(f"stopped {server.name} (pid {server.pid})")
    if not stopped:
        echo(f"no embedded server running under {settings.home}", err=True)
