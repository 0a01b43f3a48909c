"""The ``wfrunner`` command line (CONTRACT §4).

Exit codes: 0 success, 1 a run did not complete, 2 bad input or configuration. Every
:class:`WfrunnerError` is printed as its message; ``-v`` adds the traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from wfrunner.compiler import IR, compile_workflow, load_definitions
from wfrunner.compiler.render import FORMATS, render
from wfrunner.errors import CompileError, WfrunnerError, WorkflowError
from wfrunner.settings import DOCUMENTED, Settings

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

_state: dict[str, bool] = {"verbose": False}


@cli.callback()
def _main(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show tracebacks.")] = False,
) -> None:
    _state["verbose"] = verbose


def _echo(text: str) -> None:
    typer.echo(text)


@cli.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Workflow files (one workflow or a named collection each).")
    ],
) -> None:
    """Check workflow files; print one line per problem and exit 2 if any is invalid."""
    failed = False
    for path in files:
        try:
            definitions = load_definitions(path)
        except WorkflowError as exc:
            _echo(f"error {exc}")
            failed = True
            continue
        for item in definitions:
            try:
                compile_workflow(item.definition, item.source)
                _echo(f"ok    {item.source}")
            except CompileError as exc:
                failed = True
                for problem in exc.problems:
                    _echo(f"error {item.source}: {problem}")
    if failed:
        raise typer.Exit(2)


def _compile_one(path: Path, name: str | None) -> IR:
    definitions = load_definitions(path)
    if name is not None:
        chosen = [d for d in definitions if d.name == name]
        if not chosen:
            names = ", ".join(d.name for d in definitions)
            raise WorkflowError(f"{path}: no workflow named {name!r} (it has: {names})")
        definitions = chosen
    if len(definitions) > 1:
        names = ", ".join(d.name for d in definitions)
        raise WorkflowError(f"{path} holds several workflows ({names}): choose one with --name")
    return compile_workflow(definitions[0].definition, definitions[0].source)


_NameOption = Annotated[
    str | None, typer.Option("--name", help="Which workflow of a collection file.")
]


@cli.command("compile")
def compile_command(file: Path, name: _NameOption = None) -> None:
    """Print the IR of a workflow as JSON."""
    ir = _compile_one(file, name)
    _echo(json.dumps(ir.to_dict(), indent=2))


@cli.command()
def graph(
    file: Path,
    fmt: Annotated[
        str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")
    ] = "mermaid",
    name: _NameOption = None,
) -> None:
    """Draw a workflow as Mermaid or Graphviz DOT."""
    if fmt not in FORMATS:
        raise click.BadParameter(
            f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format"
        )
    sys.stdout.write(render(_compile_one(file, name), fmt))


def _database_url() -> str:
    from wfrunner.servers import resolve_database_url

    settings = Settings.from_env()
    return resolve_database_url(settings.database_url, settings.home)


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Create or migrate the tables (Alembic) in WFRUNNER_DATABASE_URL."""
    from wfrunner.store.migrate import current, upgrade

    url = _database_url()
    upgrade(url, revision)
    _echo(f"database at revision {current(url)}")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()] = "base") -> None:
    """Undo migrations down to REVISION (default: drop every wfrunner table)."""
    from wfrunner.store.migrate import current, downgrade

    url = _database_url()
    downgrade(url, revision)
    _echo(f"database at revision {current(url) or 'base'}")


def _render_error(exc: BaseException) -> None:
    if _state["verbose"]:
        traceback.print_exception(exc, file=sys.stderr)
    typer.echo(f"error: {exc}", err=True)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one place turns errors into messages and exit codes."""
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


if __name__ == "__main__":
    main()
