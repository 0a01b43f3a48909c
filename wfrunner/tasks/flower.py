"""``celery -A wfrunner flower`` refuses to serve without authentication, unless it listens on
this machine only (``--address=127.0.0.1``) or on a Unix socket.

Flower shows every node's input and output and can revoke and terminate tasks, and by
default it listens on every interface with no authentication. Its options are tornado
options its command gathers from the command line, ``FLOWER_*`` variables and
``flowerconfig.py``; it then builds its web app, whose constructor calls
``app.loader.import_default_modules()``, which sends Celery's ``import_modules`` signal and
re-raises an exception of a receiver: the one point where the options are final and
nothing listens yet. The receiver below exits there with one ``Error: ...`` line (exit 2).

Credentials must be ``user:password``: Flower takes ``FLOWER_BASIC_AUTH=""`` (Compose's
``${FLOWER_BASIC_AUTH:-}``) as the credential "", which a client can present.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import click
from celery.signals import import_modules

from wfrunner.tasks.safety import APP_NAME

_HOW = (
    "set FLOWER_BASIC_AUTH=user:password (or --basic-auth, or --auth for OAuth), or "
    "serve this machine only with --address=127.0.0.1"
)


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def open_flower_problem(
    address: str, unix_socket: str, basic_auth: Sequence[str] | None, auth: str
) -> str | None:
    """Why Flower must not serve with these options, or None when it may."""
    malformed = [c for c in basic_auth or () if not all(c.partition(":")[::2])]
    if malformed:
        return (
            "a Flower basic-auth credential is not user:password (an empty "
            f"FLOWER_BASIC_AUTH, a stray comma, a missing password): {_HOW}"
        )
    if unix_socket or _loopback(address) or basic_auth or auth:
        return None
    where = f"on {address}" if address else "on every interface"
    return f"Flower would serve {where} without authentication: {_HOW}"


@import_modules.connect
def _refuse_open_flower(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "main", None) != APP_NAME:
        return  # another Celery app in this process: not ours to judge
    context = click.get_current_context(silent=True)
    if context is None or context.command.name != "flower":
        return  # a worker, beat or other command imports its modules too
    from tornado.options import options

    problem = open_flower_problem(
        options.address, options.unix_socket, options.basic_auth, options.auth
    )
    if problem:
        # Celery logs a receiver's Exception with its traceback before re-raising it; a
        # SystemExit passes through the signal and click untouched
        click.echo(f"Error: {problem}", err=True)
        raise SystemExit(2)
