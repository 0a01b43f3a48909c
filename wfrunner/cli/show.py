"""``status`` and ``trace``: a run as people read it, or as JSON for scripts (``--json``).

``status`` lists the nodes in workflow order (each after the nodes that lead to it), so a
run reads top to bottom as it ran. ``trace``
prints one line per event with only what a reader needs: the token's internals (payload
refs, op keys) are in ``--json``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from wfrunner.cli.app import cli, echo
from wfrunner.cli.connect import resolved_runtime
from wfrunner.cli.params import RunId
from wfrunner.compiler import IR
from wfrunner.compiler.graph import topological_order
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

if TYPE_CHECKING:
    from wfrunner.runtime import Runtime

_JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

#: event fields ``trace`` leaves to ``--json``: internals, or already in their own column
TRACE_HIDDEN = frozenset({"type", "node", "t", "token", "by", "output_ref", "input_ref", "run_id"})
#: characters of a non-text field's value ``trace`` shows (messages are shown whole)
TRACE_VALUE_CHARS = 80


def workflow_order(ir: IR, listed: Sequence[str] = ()) -> list[str]:
    """Node ids in topological order of the forward edges (loop-backs left out): entry
    nodes in the order the definition lists them (``listed``: the IR read back from
    PostgreSQL has its nodes in JSONB's key order, shortest id first), then each node's
    successors in the order of its edges."""
    known = set(listed)
    ids = [n for n in listed if n in ir.nodes] + [n for n in ir.nodes if n not in known]
    succ = {node_id: node.successors for node_id, node in ir.nodes.items()}
    order = topological_order(ids, succ)
    placed = set(order)
    return order + [n for n in ids if n not in placed]


def node_order(rt: Runtime, workflow_id: str) -> list[str]:
    """A stored workflow's node ids in workflow order."""
    workflow = rt.store.get_workflow(workflow_id)
    return workflow_order(rt.ir(workflow.id), _listed(workflow.definition))


def _listed(definition: dict[str, Any]) -> list[str]:
    nodes = definition.get("nodes")
    if not isinstance(nodes, list):
        return []
    return [n["id"] for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str)]


@cli.command()
def status(run_id: RunId, as_json: _JsonOption = False) -> None:
    """Show a run: its status, error and every node in workflow order.

    Exits 1 when the run ended without completing."""
    from wfrunner.client import get_run

    rt = resolved_runtime()
    doc = get_run(run_id, rt)
    if as_json:
        echo(json.dumps(doc, indent=2))
    else:
        _print_status(doc, node_order(rt, doc["workflow_id"]))
    if doc["status"] in TERMINAL_RUN_STATES and doc["status"] != RunStatus.COMPLETED:
        raise typer.Exit(1)


def _with_items(info: dict[str, Any]) -> str:
    """A node's status; a map node's with its elements done: ``RUNNING 3/10 items``."""
    items = info.get("items")
    if not items:
        return str(info["status"])
    return f"{info['status']} {items['done']}/{items['total']} items"


def _rerun_lines(doc: dict[str, Any]) -> list[str]:
    """``attempt   2 (rerun after FAILED from B by erin: fixed it)`` for a run that was
    rerun (its last rerun), else nothing."""
    if not doc.get("redrives"):
        return []
    last = doc["redrives"][-1]
    parts = [f"rerun after {last['ended']}"]
    parts += [f"{key} {last[key]}" for key in ("from", "by") if last.get(key)]
    why = f": {last['reason']}" if last.get("reason") else ""
    return [f"attempt   {doc['attempt']} ({' '.join(parts)}{why})"]


def _print_status(doc: dict[str, Any], order: list[str]) -> None:
    echo(f"run       {doc['run_id']}")
    echo(f"workflow  {doc['workflow_name']}@{doc['workflow_version']} ({doc['workflow_id']})")
    echo(f"status    {doc['status']}")
    if doc["error"]:
        echo(f"error     {doc['error']}")
    for line in (*_rerun_lines(doc), *_family_lines(doc)):
        echo(line)
    if doc.get("waiting_for"):
        echo(f"reason    {doc['waiting_for']}")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("node", overflow="fold")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("passes", justify="right")
    table.add_column("time", justify="right")
    for node_id in order:
        info = doc["nodes"][node_id]
        table.add_row(
            node_id,
            _with_items(info),
            str(info["attempts"]),
            str(info["iterations"]),
            _duration(info.get("seconds")),
        )
    Console(highlight=False, soft_wrap=False).print(table)
    for node_id in order:
        if doc["nodes"][node_id].get("child_run_id"):
            echo(f"{node_id}: child run {doc['nodes'][node_id]['child_run_id']}")
        if doc["nodes"][node_id].get("waiting_for"):
            echo(f"{node_id}: waiting for {doc['nodes'][node_id]['waiting_for']}")
        if doc["nodes"][node_id].get("error"):
            caught = " (caught: on_error took over)" if doc["nodes"][node_id].get("caught") else ""
            echo(f"{node_id}: {doc['nodes'][node_id]['error']}{caught}")
        if doc["nodes"][node_id].get("traceback"):
            echo(textwrap.indent(doc["nodes"][node_id]["traceback"].rstrip(), "    "))


def _family_lines(doc: dict[str, Any]) -> list[str]:
    """The run's parent (a child run) and what its on_failure handler did."""
    lines = []
    if doc.get("parent"):
        lines.append(f"parent    run {doc['parent']['run_id']} (node {doc['parent']['node']})")
    handler = doc.get("failure_handler")
    if handler:
        said = handler.get("error") if handler["status"] == "failed" else "ran"
        lines.append(f"on_failure {handler['handler']}: {said}")
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


@cli.command()
def children(run_id: RunId, as_json: _JsonOption = False) -> None:
    """List the child runs a run's subworkflow nodes started: node, run id, status."""
    from wfrunner.client import list_children

    found = [
        {
            "node": c.parent_node,
            "run_id": c.id,
            "workflow_id": c.workflow_id,
            "status": c.status.value,
            "error": c.error,
        }
        for c in list_children(run_id, resolved_runtime())
    ]
    if as_json:
        echo(json.dumps(found, indent=2))
        return
    for child in found:
        error = f"  {child['error']}" if child["error"] else ""
        echo(f"{child['node']}  {child['run_id']}  {child['status']}{error}")


@cli.command()
def trace(run_id: RunId, as_json: _JsonOption = False) -> None:
    """Print a run's event log in order: seconds since the start, event, node, details."""
    from wfrunner.client import run_events

    rt = resolved_runtime()
    events = run_events(rt.store.get_run(run_id), rt)
    if as_json:
        echo(json.dumps(events, indent=2))
        return
    start = events[0]["t"] if events else 0.0
    for seq, evt in enumerate(events, 1):
        offset = evt.get("t", start) - start
        node = evt.get("node") or "-"
        echo(f"{seq:>4} {offset:+9.3f}s {evt['type']:<15} {node:<20} {_details(evt)}".rstrip())


def _details(evt: dict[str, Any]) -> str:
    """An event's fields worth reading, as ``key=value`` (text unquoted, on one line); a
    token's ``from`` is left out when it is the node column."""
    shown = []
    for key, value in evt.items():
        if key in TRACE_HIDDEN or value in (None, "", [], {}):
            continue
        if key == "from" and value == evt.get("node"):
            continue
        if isinstance(value, str):
            text = " ".join(value.split())
        else:
            text = json.dumps(value)
            if len(text) > TRACE_VALUE_CHARS:
                text = text[: TRACE_VALUE_CHARS - 3] + "..."
        shown.append(f"{key}={text}")
    return " ".join(shown)


__all__ = ["children", "node_order", "status", "trace", "workflow_order"]
