"""``validate``, ``compile`` and ``graph``: commands that need no server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from wfrunner import handlers
from wfrunner.cli.app import cli, echo
from wfrunner.cli.params import FileArgument, NameOption, text_id
from wfrunner.compiler import IR, compile_workflow, load_definitions, pick_definition
from wfrunner.compiler.render import FORMATS, render, to_dot
from wfrunner.errors import CompileError, WorkflowError
from wfrunner.pictures.coloured import render_run, run_dot
from wfrunner.pictures.graphviz import IMAGE_FORMATS, draw


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


GRAPH_FORMATS = (*FORMATS, *IMAGE_FORMATS)


@cli.command()
def graph(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="FILE|RUN_ID", show_default=False)],
    fmt: Annotated[
        str, typer.Option("--format", help=f"One of: {', '.join(GRAPH_FORMATS)}.")
    ] = "mermaid",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="PATH", help="Write here instead of stdout."),
    ] = None,
    name: NameOption = None,
) -> None:
    """Draw a workflow file, or a run coloured by node status, as Mermaid, DOT, SVG or PNG.

    A RUN_ID (no file of that name) draws its run: nodes by status, taken edges bold.

    SVG and PNG need Graphviz's dot (apt-get install graphviz / brew install graphviz)."""
    if fmt not in GRAPH_FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(GRAPH_FORMATS)}", ctx=ctx, param_hint="'--format'"
        )
    if fmt == "png" and output is None and sys.stdout.isatty():
        raise typer.BadParameter(
            "PNG is not written to a terminal: give --output PATH or redirect stdout",
            ctx=ctx,
            param_hint="'--format'",
        )
    dot, text = _drawing(target, fmt, name)
    picture = draw(dot, fmt) if fmt in IMAGE_FORMATS else text.encode("utf-8")
    if output is not None:
        try:
            output.write_bytes(picture)
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot write {output}: {exc.strerror}", ctx=ctx, param_hint="'--output'"
            ) from None
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(picture)
        sys.stdout.buffer.flush()


def _drawing(target: str, fmt: str, name: str | None) -> tuple[str, str]:
    """(DOT, text in ``fmt``) of a workflow file or of a run: a target that is no existing
    file (and no ``.json`` name, as ``run`` reads it) is a run id."""
    text_fmt = fmt if fmt in FORMATS else "dot"
    if Path(target).exists() or target.endswith(".json"):
        ir = _compile_one(Path(target), name)
        return to_dot(ir), render(ir, text_fmt)
    if name is not None:
        raise WorkflowError(
            f"{target}: no such file (--name picks a workflow of a collection file)"
        )
    from wfrunner.cli.connect import resolved_runtime
    from wfrunner.client import get_run

    rt = resolved_runtime()
    doc = get_run(text_id(target), rt)
    ir = rt.ir(doc["workflow_id"])
    return run_dot(ir, doc), render_run(ir, doc, text_fmt)
