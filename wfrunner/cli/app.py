"""The ``wfrunner`` command line (CONTRACT §4): the Typer app and its error renderer.

Exit codes: 0 success, 1 a run did not complete, 2 bad input or configuration. Every
:class:`WfrunnerError` is printed as its message; ``-v`` adds the traceback.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import click
import typer

from wfrunner.errors import WfrunnerError
from wfrunner.settings import DOCUMENTED

_ENV_HELP = "\n\n".join(
    f"{name}: {text} (default {default})" for name, (default, text) in DOCUMENTED.items()
)

cli = typer.Typer(
    name="wfrunner",
    help=f"Run JSON workflows as Celery tasks.\n\nEnvironment:\n\n{_ENV_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Manage the PostgreSQL schema.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
dlq_cli = typer.Typer(
    help="Dead letters: node messages whose attempts ran out.", no_args_is_help=True
)
cli.add_typer(dlq_cli, name="dlq")

_state: dict[str, bool] = {"verbose": False}


@cli.callback()
def _main(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show tracebacks.")] = False,
) -> None:
    _state["verbose"] = verbose


def echo(text: str, err: bool = False) -> None:
    typer.echo(text, err=err)


def _render_error(exc: BaseException) -> None:
    if _state["verbose"]:
        traceback.print_exception(exc, file=sys.stderr)
    typer.echo(f"error: {exc}", err=True)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one place turns errors into messages and exit codes."""
    from wfrunner.cli import db, definitions, dlq, runs, servers  # noqa: F401  (register them)

    command = typer.main.get_command(cli)
    try:
        code = command.main(args=argv, prog_name="wfrunner", standalone_mode=False)
    except WfrunnerError as exc:
        _render_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
