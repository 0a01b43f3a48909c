"""The ``wfrunner`` command line: the Typer app and its one error renderer.

Exit codes: 0 success; 1 a run did not complete, or no command was given (the help is
printed, as ``git`` does); 2 a usage error, bad input or configuration; 3 an unexpected
error (:mod:`wfrunner.cli.failures`). Results go to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from wfrunner import __version__
from wfrunner.cli.failures import report
from wfrunner.settings import DOCUMENTED

_ENV_HELP = "\n\n".join(
    f"{name}: {text} (default {default})" for name, (default, text) in DOCUMENTED.items()
)

#: exit code of a bare group (``wfrunner``, ``wfrunner db``): git's, after printing the help
NO_COMMAND_EXIT = 1


def _group(help_text: str) -> typer.Typer:
    group = typer.Typer(
        help=help_text,
        add_completion=False,
        pretty_exceptions_enable=False,
        invoke_without_command=True,
    )
    group.callback()(_help_when_bare)
    return group


def _help_when_bare(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help(), nl=False)
        raise typer.Exit(NO_COMMAND_EXIT)


cli = typer.Typer(
    name="wfrunner",
    help="Run JSON workflows as Celery tasks.",
    epilog=f"Environment:\n\n{_ENV_HELP}",
    add_completion=False,
    pretty_exceptions_enable=False,
    invoke_without_command=True,
)
db_cli = _group("Manage the PostgreSQL schema.")
cli.add_typer(db_cli, name="db")
dlq_cli = _group("Dead letters: node messages whose attempts ran out.")
cli.add_typer(dlq_cli, name="dlq")

_state: dict[str, bool] = {"verbose": False}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"wfrunner {__version__}")
        raise typer.Exit(0)


@cli.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show tracebacks of errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    _state["verbose"] = verbose
    _help_when_bare(ctx)


def echo(text: str, err: bool = False) -> None:
    typer.echo(text, err=err)


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with "..." when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one place turns errors into messages and exit codes."""
    from wfrunner.cli import (  # noqa: F401  (the commands)
        db,
        definitions,
        dlq,
        doctor,
        limits,
        listing,
        operate,
        replay,
        runs,
        schedules,
        serve,
        servers,
        show,
    )

    command = typer.main.get_command(cli)
    try:
        code = command.main(args=argv, prog_name="wfrunner", standalone_mode=False)
    except Exception as exc:  # the one renderer of every failure
        sys.exit(report(exc, _state["verbose"]))
    except KeyboardInterrupt as exc:
        sys.exit(report(exc, _state["verbose"]))
    sys.exit(code if isinstance(code, int) else 0)
