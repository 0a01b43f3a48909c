"""``validate``, ``compile`` and ``graph``: commands that need no server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from wfrunner import handlers
from wfrunner.cli.app import cli, echo
from wfrunner.cli.params import FileArgument, NameOption
from wfrunner.compiler import IR, compile_workflow, load_definitions, pick_definition
from wfrunner.compiler.render import FORMATS, render
from wfrunner.errors import CompileError, WorkflowError


@cli.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE", help="Workflow files (one workflow or a named collection each)."
        ),
    ],
) -> None:
    """Check workflow files; print one line per problem and exit 2 if any is invalid."""
    failed = False
    for path in files:
        try:
            definitions = load_definitions(path)
        except WorkflowError as exc:
            echo(f"error {exc}")
            failed = True
            continue
        for item in definitions:
            try:
                compile_workflow(item.definition, item.source, handlers=handlers.known_names())
                echo(f"ok    {item.source}")
            except CompileError as exc:
                failed = True
                for problem in exc.problems:
                    echo(f"error {item.source}: {problem}")
    if failed:
        raise typer.Exit(2)


def _compile_one(path: Path, name: str | None) -> IR:
    item = pick_definition(load_definitions(path), str(path), name)
    return compile_workflow(item.definition, item.source, handlers=handlers.known_names())


@cli.command("compile")
def compile_command(file: FileArgument, name: NameOption = None) -> None:
    """Print the IR of a workflow as JSON."""
    ir = _compile_one(file, name)
    echo(json.dumps(ir.to_dict(), indent=2))


@cli.command()
def graph(
    ctx: typer.Context,
    file: FileArgument,
    fmt: Annotated[
        str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")
    ] = "mermaid",
    name: NameOption = None,
) -> None:
    """Draw a workflow as Mermaid or Graphviz DOT."""
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(FORMATS)}", ctx=ctx, param_hint="'--format'"
        )
    sys.stdout.write(render(_compile_one(file, name), fmt))
