"""``wfrunner serve``: the REST API under uvicorn.

Without ``WFRUNNER_API_TOKEN`` the API asks no one for a token, so it listens only on a
loopback address, where only this machine's users reach it; any other address needs the
token set, and serve refuses to start without it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from wfrunner.cli.app import cli, echo
from wfrunner.cli.connect import resolved_runtime
from wfrunner.errors import ConfigurationError
from wfrunner.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@cli.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
) -> None:
    """Serve the REST API (docs/api.md) with uvicorn.

    Every route but /healthz and /openapi.json asks for Authorization: Bearer
    $WFRUNNER_API_TOKEN; without the token only a loopback host is served."""
    if not Settings.from_env().api_token and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without WFRUNNER_API_TOKEN: anyone who reaches "
            "it could start runs; set the token, or listen on 127.0.0.1"
        )
    import uvicorn

    from wfrunner.api import create_app

    rt = resolved_runtime()
    if not rt.settings.api_token:
        echo("WFRUNNER_API_TOKEN is not set: the API asks for no token", err=True)
    uvicorn.run(create_app(rt), host=host, port=port, log_level="info")


__all__ = ["is_loopback", "serve"]
