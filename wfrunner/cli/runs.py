"""``register`` and ``run``: commands that store workflows and start runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from wfrunner.cli.app import cli, echo
from wfrunner.cli.connect import resolved_runtime, unresolved_runtime
from wfrunner.cli.params import FileArgument, NameOption, json_input, text_id
from wfrunner.errors import WorkflowError
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

#: seconds between progress lines of ``run --wait`` (its end wakes it at once)
PROGRESS_INTERVAL = 0.2


@cli.command()
def register(file: FileArgument, name: NameOption = None) -> None:
    """Validate, compile and store a workflow; prints its id."""
    echo(_register(file, name))


def _register(path: Path, name: str | None) -> str:
    """Store a file's workflow; a bad file fails before any server is reached."""
    from wfrunner.client import prepare_workflow, store_workflow

    rt = unresolved_runtime()  # imports WFRUNNER_HANDLERS, whose names the check needs
    prepared = prepare_workflow(path, name=name)
    return store_workflow(prepared, resolved_runtime(rt))


def _workflow_id(target: str, name: str | None) -> str:
    """The id of a workflow file's workflow (registered first), or of a registered
    workflow named by id, name (its latest version) or ``name@N``."""
    if Path(target).exists() or target.endswith(".json"):
        return _register(Path(target), name)
    if name is not None:
        raise WorkflowError(
            f"{target}: no such file (--name picks a workflow of a collection file)"
        )
    # NotFoundError names the registered names, or the name's versions
    return resolved_runtime().resolve_workflow(text_id(target))


@contextmanager
def _worker_if_none() -> Iterator[None]:
    """Start a worker in this process when no worker answers a ping."""
    from wfrunner.tasks.app import app

    if app.control.ping(timeout=1.0):
        yield
        return
    from wfrunner.tasks.local import local_worker

    echo("no worker answered: running one in this process", err=True)
    with local_worker(app):
        yield


@cli.command()
def run(
    target: Annotated[str, typer.Argument(metavar="FILE|WORKFLOW_ID|NAME[@VERSION]")],
    inputs: Annotated[
        Any,
        typer.Option("--input", metavar="JSON", help="The run's inputs.", parser=json_input),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress; exit 0 only when COMPLETED.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait at most.")
    ] = None,
    name: NameOption = None,
) -> None:
    """Start a run of a workflow file, or of a registered workflow by id, name or NAME@VERSION.

    A file is registered first; a name runs its latest version ('wfrunner workflows' lists
    the versions).

    Prints the run id; --wait shows progress on stderr, then prints the output on stdout.
    """
    from wfrunner.client import submit_run

    workflow_id = _workflow_id(target, name)
    with _worker_if_none() if wait else nullcontext():
        run_id = submit_run(workflow_id, {} if inputs is None else inputs, resolved_runtime())
        echo(run_id)
        if not wait:
            return
        doc = _follow(run_id, timeout)
    _summarise(doc)
    if doc["status"] != RunStatus.COMPLETED:
        raise typer.Exit(1)


def _follow(run_id: str, timeout: float | None) -> dict[str, Any]:
    """Print each node's state change until the run ends or the timeout passes; the run's
    end is announced (wfrunner.ended), so the command returns as soon as it is recorded."""
    from wfrunner.cli.show import node_order  # here: status and trace are listed after run
    from wfrunner.client import get_run
    from wfrunner.ended import Watch

    rt = resolved_runtime()
    deadline = None if timeout is None else time.monotonic() + timeout
    shown: dict[str, str] = {}
    order: list[str] = []
    with Watch(rt, run_id) as watch:
        while True:
            doc = get_run(run_id, rt)
            order = order or node_order(rt, doc["workflow_id"])
            for node in order:
                info = doc["nodes"][node]
                if info["status"] != "PENDING" and shown.get(node) != info["status"]:
                    shown[node] = info["status"]
                    hint = ""
                    if info["status"] == "WAITING":
                        hint = f"  (wfrunner approve|reject {run_id} {node})"
                    echo(f"  {node:<24} {info['status']}{hint}", err=True)
            if doc["status"] in TERMINAL_RUN_STATES:
                return doc
            if deadline is not None and time.monotonic() > deadline:
                echo(f"run {run_id} is still {doc['status']} after {timeout:g} s", err=True)
                return doc
            watch.wait(PROGRESS_INTERVAL)


def _summarise(doc: dict[str, Any]) -> None:
    line = f"run {doc['run_id']}: {doc['status']}"
    if doc.get("error"):
        line += f": {doc['error']}"
    echo(line, err=True)
    terminal = [n for n, info in doc["nodes"].items() if info["status"] == "COMPLETED"]
    if doc["status"] == RunStatus.COMPLETED and terminal:
        last = doc["path"][-1]["to"] if doc["path"] else terminal[-1]
        echo(json.dumps(doc["nodes"][last]["output"]))


__all__ = ["register", "run"]
