"""``register``, ``run``, ``status`` and ``trace``: commands that talk to the servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from wfrunner.cli.app import cli, echo
from wfrunner.errors import WorkflowError
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

#: seconds between progress lines of ``run --wait`` (its end wakes it at once)
PROGRESS_INTERVAL = 0.2

FINAL_NODE_MARKS = {"COMPLETED": "ok", "FAILED": "FAILED", "SKIPPED": "skipped"}


def _runtime() -> Any:
    """The runtime with both servers resolved: a misconfigured one fails the command at
    once, naming its setting, whether or not this command would have reached it."""
    from wfrunner.runtime import runtime

    rt = runtime()
    _ = (rt.redis_url, rt.database_url)
    return rt


@cli.command()
def register(file: Path) -> None:
    """Validate, compile and store a workflow; prints its id."""
    from wfrunner.client import register_workflow

    echo(register_workflow(file, _runtime()))


def _parse_inputs(raw: str | None) -> Any:
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"--input is not valid JSON: {exc.msg} at column {exc.colno}") from None


def _workflow_id(target: str) -> str:
    from wfrunner.client import register_workflow

    rt = _runtime()
    if Path(target).exists() or target.endswith(".json"):
        return register_workflow(Path(target), rt)
    rt.store.get_workflow(target)  # NotFoundError names the id
    return target


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
    target: Annotated[str, typer.Argument(metavar="FILE_OR_WORKFLOW_ID")],
    inputs: Annotated[str | None, typer.Option("--input", help="The run's inputs as JSON.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress; exit 0 only when COMPLETED.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait at most.")
    ] = None,
) -> None:
    """Start a run of a workflow file (registered first) or of a registered workflow id."""
    from wfrunner.client import submit_run

    values = _parse_inputs(inputs)
    workflow_id = _workflow_id(target)
    with _worker_if_none() if wait else nullcontext():
        run_id = submit_run(workflow_id, values, _runtime())
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
    from wfrunner.client import get_run
    from wfrunner.ended import Watch

    rt = _runtime()
    deadline = None if timeout is None else time.monotonic() + timeout
    shown: dict[str, str] = {}
    with Watch(rt, run_id) as watch:
        while True:
            doc = get_run(run_id, rt)
            for node, info in doc["nodes"].items():
                if info["status"] != "PENDING" and shown.get(node) != info["status"]:
                    shown[node] = info["status"]
                    echo(f"  {node:<24} {info['status']}", err=True)
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
        echo(json.dumps({"output": doc["nodes"][last]["output"]}), err=True)


@cli.command()
def status(
    run_id: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run document as JSON.")
    ] = False,
) -> None:
    """Show a run: its status, error and every node."""
    from wfrunner.client import get_run

    doc = get_run(run_id, _runtime())
    if as_json:
        echo(json.dumps(doc, indent=2))
        return
    echo(f"run       {doc['run_id']}")
    echo(f"workflow  {doc['workflow_id']}")
    echo(f"status    {doc['status']}")
    if doc["error"]:
        echo(f"error     {doc['error']}")
    for node, info in doc["nodes"].items():
        extra = f"  x{info['iterations']}" if info["iterations"] > 1 else ""
        echo(f"  {node:<24} {info['status']:<10}{extra}")
    if doc["status"] not in TERMINAL_RUN_STATES:
        return
    if doc["status"] != RunStatus.COMPLETED:
        raise typer.Exit(1)


@cli.command()
def trace(run_id: str) -> None:
    """Print a run's event log, in order."""
    from wfrunner.client import run_events

    rt = _runtime()
    events = run_events(rt.store.get_run(run_id), rt)
    start = events[0]["t"] if events else 0.0
    for seq, evt in enumerate(events, 1):
        details = {
            k: v for k, v in evt.items() if k not in ("type", "node", "t") and v not in (None, "")
        }
        text = " ".join(f"{k}={json.dumps(v)}" for k, v in details.items())
        offset = evt.get("t", start) - start
        node = evt.get("node") or "-"
        echo(f"{seq:>4} {offset:+9.3f}s {evt['type']:<15} {node:<20} {text}")


__all__ = ["register", "run", "status", "trace"]
