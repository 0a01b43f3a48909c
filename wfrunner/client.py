"""The Python API (CONTRACT §3): register workflows, start runs, read run documents."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from wfrunner import ended, fencing, handlers, history
from wfrunner.compiler import IR, compile_workflow, load_definitions
from wfrunner.errors import CompileError, PayloadError, WfrunnerError, WorkflowError
from wfrunner.runtime import Runtime, runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus
from wfrunner.store import RunRecord


def _definition(source: dict[str, Any] | str | Path) -> tuple[str, dict[str, Any], str]:
    """(name, definition, where) of a dict or a one-workflow file."""
    if isinstance(source, dict):
        meta = source.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return (name if isinstance(name, str) else "workflow"), source, "workflow"
    definitions = load_definitions(source)
    if len(definitions) != 1:
        names = ", ".join(d.name for d in definitions)
        raise WorkflowError(f"{source} holds several workflows ({names}): register one at a time")
    item = definitions[0]
    return item.name, item.definition, item.source


def check_handlers(ir: IR, where: str) -> None:
    """Reject handler names no loaded module registers, when WFRUNNER_HANDLERS is set.

    Without configured modules the CLI cannot know what workers have, so it does not guess.
    """
    if not handlers.loaded_modules():
        return
    known = handlers.registered()
    problems = [
        f"node {n.id!r}: no handler registered under {n.function_name!r} "
        f"(loaded: {', '.join(handlers.loaded_modules())})"
        for n in ir.nodes.values()
        if n.function_name and n.function_name not in known
    ]
    if problems:
        raise CompileError(problems, where)


def register_workflow(definition: dict[str, Any] | str | Path, rt: Runtime | None = None) -> str:
    """Validate, compile and store a workflow; returns its id (the same for the same text)."""
    rt = rt or runtime()
    name, doc, where = _definition(definition)
    ir = compile_workflow(doc, where)
    check_handlers(ir, where)
    return rt.store.register_workflow(name, doc, ir.to_dict()).id


def submit_run(workflow_id: str, inputs: Any = None, rt: Runtime | None = None) -> str:
    """Create the run (QUEUED) and send ``wfrunner.start_run``; returns the run id."""
    from wfrunner.tasks.runs import start_run

    rt = rt or runtime()
    json.dumps(inputs)  # TypeError here rather than in the broker
    _ = rt.redis_url  # an unreachable broker fails here, before a run is recorded QUEUED
    ir = rt.ir(workflow_id)
    run = rt.store.create_run(workflow_id, inputs, len(ir.entry_nodes))
    start_run.apply_async(args=[workflow_id], kwargs={"inputs": inputs}, task_id=run.id)
    return run.id


def is_live(run: RunRecord, rt: Runtime) -> bool:
    """Whether the run's events and outputs are read from Redis (else from PostgreSQL)."""
    return run.status not in TERMINAL_RUN_STATES and bool(rt.state.meta(run.id))


def run_events(run: RunRecord, rt: Runtime, live: bool | None = None) -> list[dict[str, Any]]:
    """The run's events in order. While it is live, the flushed ones Redis trimmed come
    from PostgreSQL and the rest from Redis; once it ended, all from PostgreSQL."""
    if is_live(run, rt) if live is None else live:
        meta, events = fencing.whole_history(rt, run.id)
        if meta:
            return events
    return [e.as_event() for e in rt.store.list_events(run.id)]


def get_run(run_id: str, rt: Runtime | None = None) -> dict[str, Any]:
    """The run document of CONTRACT §5."""
    rt = rt or runtime()
    run = rt.store.get_run(run_id)
    ir = rt.ir(run.workflow_id)
    ended = run.status in TERMINAL_RUN_STATES
    live = is_live(run, rt)
    events = run_events(run, rt, live)
    if live:

        def load(refs: list[str]) -> list[Any]:
            return rt.state.payloads(run_id, refs)
    else:

        def load(refs: list[str]) -> list[Any]:
            found = rt.store.load_payloads(run_id, refs)
            missing = [ref for ref in refs if ref not in found]
            if missing:
                raise PayloadError(f"run '{run_id}' has no payload '{missing[0]}'")
            return [found[ref] for ref in refs]

    nodes = history.progress(ir.nodes, events)
    stats = {**rt.store.get_stats(run_id), **history.statistics(events)}
    return {
        "run_id": run.id,
        "workflow_id": run.workflow_id,
        "status": run.status.value,
        "error": run.error,
        "inputs": run.inputs,
        "nodes": history.node_documents(nodes, ended, load),
        "path": history.path(events),
        "stats": stats,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "completed_at": run.completed_at.isoformat() if run.completed_at else None,
    }


def wait_for_run(
    run_id: str, timeout: float | None = None, interval: float = 2.0, rt: Runtime | None = None
) -> dict[str, Any]:
    """Wait until the run ends (or ``timeout`` passes); returns the latest document.

    The run's end is announced over Redis pub/sub (:mod:`wfrunner.ended`), which wakes
    this at once; PostgreSQL is read again every ``interval`` s too, in case the
    announcement was lost."""
    rt = rt or runtime()
    deadline = None if timeout is None else time.monotonic() + timeout
    with ended.Watch(rt, run_id) as watch:
        status = rt.store.get_run(run_id).status
        while True:
            left = interval if deadline is None else min(interval, deadline - time.monotonic())
            if status in TERMINAL_RUN_STATES or left <= 0:
                return get_run(run_id, rt)
            if watch.wait(left):  # announced: the document is what the caller wants
                doc = get_run(run_id, rt)
                if RunStatus(doc["status"]) in TERMINAL_RUN_STATES:
                    return doc
            status = rt.store.get_run(run_id).status


__all__ = [
    "RunStatus",
    "WfrunnerError",
    "check_handlers",
    "get_run",
    "register_workflow",
    "submit_run",
    "wait_for_run",
]
