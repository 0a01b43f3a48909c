"""``validate``, ``compile`` and ``graph``: commands that need no server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from wfrunner import handlers
from wfrunner.cli.app import cli, echo
from wfrunner.compiler import IR, compile_workflow, load_definitions
from wfrunner.compiler.render import FORMATS, render
from wfrunner.errors import CompileError, WorkflowError


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
    only = definitions[0]
    return compile_workflow(only.definition, only.source, handlers=handlers.known_names())


_NameOption = Annotated[
    str | None, typer.Option("--name", help="Which workflow of a collection file.")
]


@cli.command("compile")
def compile_command(file: Path, name: _NameOption = None) -> None:
    """Print the IR of a workflow as JSON."""
    ir = _compile_one(file, name)
    echo(json.dumps(ir.to_dict(), indent=2))


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
