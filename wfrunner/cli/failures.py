"""Every way a command can fail, turned into a message on stderr and an exit code.

A user of ``git`` or ``celery`` expects a bad command line to cost one line and the usage,
and a failure to cost one line: never a traceback, unless asked for (``-v``). Exit codes:

- 2: a usage error (unknown option, missing argument, bad value), or a
  :class:`~wfrunner.errors.WfrunnerError` (bad input or configuration: its ``exit_code``);
- 3: anything else (a library or server failed mid-command, or a bug in wfrunner). The
  message names the exception type, so ``-v`` is only needed to report it;
- 130: interrupted (Ctrl-C).

Typer bundles its own copy of click, so its usage errors are not ``click.UsageError``:
they are recognised by what every one of them has, a ``ctx`` to print the usage from.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer

from wfrunner.errors import WfrunnerError

#: exit code of an error wfrunner did not expect (a library's, a server's, or a bug)
UNEXPECTED_EXIT = 3
#: exit code after Ctrl-C, as shells report a SIGINT
INTERRUPTED_EXIT = 130
#: characters of an unexpected error's message shown (SQL statements can be long)
MESSAGE_LIMIT = 300


def report(exc: BaseException, verbose: bool) -> int:
    """Print ``exc`` for a user; returns the exit code."""
    if isinstance(exc, typer.TyperException):
        return _usage_error(exc)
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, typer.Abort | KeyboardInterrupt):
        _say("interrupted")
        return INTERRUPTED_EXIT
    if isinstance(exc, WfrunnerError):
        _say(str(exc))
        return exc.exit_code
    hint = "" if verbose else " (unexpected: 'wfrunner -v ...' shows the traceback)"
    _say(f"{_library(exc)}{type(exc).__name__}: {_first_line(exc)}{hint}")
    return UNEXPECTED_EXIT


def _usage_error(exc: typer.TyperException) -> int:
    ctx: Any = getattr(exc, "ctx", None)
    _say(exc.format_message())
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
        typer.echo(f"Try '{ctx.command_path} --help' for help.", err=True)
    return 2


def _library(exc: BaseException) -> str:
    """'psycopg2: ' and the like: which library raised, for a user to search."""
    root = type(exc).__module__.split(".")[0]
    return "" if root in ("builtins", "wfrunner") else f"{root}: "


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "(no message)"
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _say(text: str) -> None:
    typer.echo(f"error: {text}", err=True)
