"""The Python API (README, "Python API"): register workflows, start runs, read run documents."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wfrunner import ended, fencing, handlers, history, waits
from wfrunner.compiler import IR, compile_workflow, load_definitions, pick_definition
from wfrunner.compiler.source import split_definitions
from wfrunner.documents import RunDocument
from wfrunner.errors import PayloadError, QueryError, WfrunnerError
from wfrunner.runtime import Runtime, runtime
from wfrunner.since import parse_since
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus
from wfrunner.store import DEFAULT_LIMIT, DeadLetterRecord, Page, RunRecord, RunSummary


def _definition(
    source: dict[str, Any] | str | Path, name: str | None = None, chooser: str = "--name"
) -> tuple[str, dict[str, Any], str]:
    """(name, definition, where) of a dict, or of the workflow ``name`` of a file or of a
    dict holding a named collection (which may be left out when it holds one workflow)."""
    if isinstance(source, dict) and not _is_collection(source):
        meta = source.get("metadata")
        meta_name = meta.get("name") if isinstance(meta, dict) else None
        return (meta_name if isinstance(meta_name, str) else "workflow"), source, "workflow"
    if isinstance(source, dict):
        item = pick_definition(
            split_definitions(source, "workflow", "workflow"), "workflow", name, chooser
        )
    else:
        item = pick_definition(load_definitions(source), str(source), name, chooser)
    return item.name, item.definition, item.source


def _is_collection(value: dict[str, Any]) -> bool:
    """Named workflows (``{"name": {"nodes": ...}, ...}``) rather than one workflow."""
    return (
        bool(value)
        and "nodes" not in value
        and all(isinstance(v, dict) and "nodes" in v for v in value.values())
    )


@dataclass(frozen=True)
class PreparedWorkflow:
    """A definition validated and compiled, not stored yet."""

    name: str
    definition: dict[str, Any]
    ir: IR


def prepare_workflow(
    definition: dict[str, Any] | str | Path,
    *,
    name: str | None = None,
    handler_modules: tuple[str, ...] | None = None,
    chooser: str = "--name",
) -> PreparedWorkflow:
    """Validate and compile a workflow without touching a server, so a bad file fails
    first; ``name`` picks one workflow of a file or dict that holds a named collection
    (``chooser`` says how, in the error when it is missing). Handler names are checked
    against those ``handler_modules`` register (default: WFRUNNER_HANDLERS; none
    configured, none judged)."""
    name, doc, where = _definition(definition, name, chooser)
    ir = compile_workflow(doc, where, handlers=handlers.known_names(handler_modules))
    return PreparedWorkflow(name, doc, ir)


def store_workflow(prepared: PreparedWorkflow, rt: Runtime | None = None) -> str:
    """Store a prepared workflow; returns its id (the same for the same definition)."""
    from wfrunner.schedules.registry import sync
    from wfrunner.subflows import check_registration

    rt = rt or runtime()
    check_registration(rt, prepared.name, prepared.ir, prepared.name)
    stored = rt.store.register_workflow(prepared.name, prepared.definition, prepared.ir.to_dict())
    sync(rt, stored)  # the name's cron schedule follows its latest version
    return stored.id


def register_workflow(
    definition: dict[str, Any] | str | Path, rt: Runtime | None = None, *, name: str | None = None
) -> str:
    """Validate, compile and store a workflow; returns its id (the same for the same text).

    A file may hold a collection of named workflows: ``name`` picks one."""
    rt = rt or runtime()
    prepared = prepare_workflow(definition, name=name, handler_modules=rt.settings.handler_modules)
    return store_workflow(prepared, rt)


def submit_run(
    workflow: str, inputs: Any = None, rt: Runtime | None = None, *, version: int | None = None
) -> str:
    """Create the run (QUEUED) and send ``wfrunner.start_run``; returns the run id.

    ``workflow``: a workflow id, a name (its latest version) or ``name@N``, or a name with
    ``version``; the run is pinned to the version resolved here."""
    from wfrunner.tasks.runs import start_run

    rt = rt or runtime()
    json.dumps(inputs)  # TypeError here rather than in the broker
    _ = rt.redis_url  # an unreachable Redis fails here, before a run is recorded QUEUED
    workflow_id = rt.resolve_workflow(workflow, version)
    ir = rt.ir(workflow_id)
    run = rt.store.create_run(workflow_id, inputs, len(ir.entry_nodes))
    start_run.apply_async(args=[workflow_id], kwargs={"inputs": inputs}, task_id=run.id)
    return run.id


def is_live(run: RunRecord, rt: Runtime) -> bool:
    """Whether the run's events and outputs are read from Redis (else from PostgreSQL)."""
    return run.status not in TERMINAL_RUN_STATES and bool(rt.state.meta(run.id))


def run_events(run: RunRecord, rt: Runtime) -> list[dict[str, Any]]:
    """The run's events in order. While it is live, the flushed ones Redis trimmed come
    from PostgreSQL and the rest from Redis; once it ended, all from PostgreSQL."""
    if is_live(run, rt):
        meta, events = fencing.whole_history(rt, run.id)
        if meta:
            return events
    return [e.as_event() for e in rt.store.list_events(run.id)]


def get_run(run_id: str, rt: Runtime | None = None) -> RunDocument:
    """The run document (docs/run-document.md): a dict, with typed properties."""
    rt = rt or runtime()
    for _ in range(_LIVE_READS):
        doc = _document(run_id, rt, live_allowed=True)
        if doc is not None:
            return RunDocument(doc)
    doc = _document(run_id, rt, live_allowed=False)
    assert doc is not None
    return RunDocument(doc)


#: reads of a live run's document before it is read from PostgreSQL alone: each read that
#: finds the run finished under it (its hot state gone) starts again
_LIVE_READS = 3


class _Gone(Exception):
    """The run's hot state went away during a read (its end was being recorded)."""


def _document(run_id: str, rt: Runtime, live_allowed: bool) -> dict[str, Any] | None:
    """The document, or None when the run finished while it was read from Redis: its
    outputs were deleted there once PostgreSQL had them (the caller reads again)."""
    view = rt.store.read_run(run_id)
    run = view.run
    ir = rt.ir(run.workflow_id)
    events: list[dict[str, Any]] | None = None
    if live_allowed and is_live(run, rt):
        meta, events = fencing.whole_history(rt, run.id)
        if not meta:
            return None

    if events is not None:

        def load(refs: list[str]) -> list[Any]:
            found = rt.state.payloads(run_id, refs)
            if len(found) < len(set(refs)):
                raise _Gone(run_id)
            return [found[ref] for ref in refs]
    else:
        stored = view.events if view.events is not None else rt.store.list_events(run.id)
        events = [e.as_event() for e in stored]

        def load(refs: list[str]) -> list[Any]:
            found = rt.store.load_payloads(run_id, refs)
            missing = [ref for ref in refs if ref not in found]
            if missing:
                raise PayloadError(f"run '{run_id}' has no payload '{missing[0]}'")
            return [found[ref] for ref in refs]

    try:
        label = rt.workflow_name(run.workflow_id), rt.workflow_version(run.workflow_id)
        doc = history.document(run, ir.nodes, events, view.stats, load, label)
    except _Gone:
        return None
    waits.explain(rt, doc, ir)
    return doc


def list_children(run_id: str, rt: Runtime | None = None) -> list[RunRecord]:
    """The child runs the run's subworkflow nodes started, oldest first (NotFoundError
    for an unknown run)."""
    rt = rt or runtime()
    rt.store.get_run(run_id)
    return rt.store.child_runs(run_id)


def list_runs(
    workflow_id: str | None = None,
    status: RunStatus | str | Iterable[RunStatus | str] | None = None,
    since: datetime | str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    rt: Runtime | None = None,
) -> Page[RunSummary]:
    """Runs newest first: ``status`` one status or several, ``since`` a time or an age
    ("1h", "2d"); pass the page's ``next_cursor`` back as ``cursor`` for the next page."""
    rt = rt or runtime()
    return rt.store.list_runs(
        workflow_id=workflow_id,
        statuses=run_statuses(status),
        since=parse_since(since) if isinstance(since, str) else _aware(since),
        limit=limit,
        cursor=cursor,
    )


def run_statuses(status: RunStatus | str | Iterable[RunStatus | str] | None) -> list[RunStatus]:
    """Statuses as given, in any case; QueryError naming an unknown one."""
    given = [status] if isinstance(status, str) else list(status or [])
    known = {s.value for s in RunStatus}
    wanted = []
    for item in given:
        name = str(item.value if isinstance(item, RunStatus) else item).upper()
        if name not in known:
            raise QueryError(
                f"status {str(item)[:40]!r} is not one of {', '.join(sorted(known))}", "status"
            )
        wanted.append(RunStatus(name))
    return wanted


def _aware(when: datetime | None) -> datetime | None:
    """A time without a zone is UTC, as every time the store keeps."""
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def events_after(
    run_id: str, after: int = 0, limit: int | None = None, rt: Runtime | None = None
) -> tuple[RunRecord, list[tuple[int, dict[str, Any]]]]:
    """The run and its events numbered from 1, those after number ``after`` (at most
    ``limit``): a live run's are read as :func:`run_events` does, an ended run's from
    PostgreSQL by their number."""
    rt = rt or runtime()
    run = rt.store.get_run(run_id)
    if is_live(run, rt):
        numbered = list(enumerate(run_events(run, rt), 1))[after:]
        return run, numbered[:limit] if limit is not None else numbered
    stored = rt.store.list_events(run_id, after, limit)
    return run, [(e.seq, e.as_event()) for e in stored]


def list_dead_letters(
    status: str | None = "open", rt: Runtime | None = None
) -> list[DeadLetterRecord]:
    """Dead letters (``status`` "open", "retried", or None for all), after moving the
    poison messages workers parked in Redis into PostgreSQL, so none is missing."""
    from wfrunner.poison import drain

    rt = rt or runtime()
    drain(rt)
    return rt.store.list_dead_letters(status)


def retry_dead_letter(letter_id: int, rt: Runtime | None = None) -> str:
    """Resume the FAILED run of a node dead letter; returns the run id."""
    from wfrunner.poison import drain
    from wfrunner.recovery import retry_dead_letter as reopen
    from wfrunner.tasks.execution import dispatch

    rt = rt or runtime()
    drain(rt)
    run_id, tokens = reopen(rt, letter_id)
    workflow_id = rt.store.get_run(run_id).workflow_id
    dispatch(tokens, workflow_id, rt.ir(workflow_id))
    return run_id


def wait_for_run(
    run_id: str, timeout: float | None = None, interval: float = 2.0, rt: Runtime | None = None
) -> RunDocument:
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
            announced = watch.wait(left)
            if announced is not None and announced.document is not None:
                # what the worker committed: no read needed
                return RunDocument(announced.document)
            if announced is not None:  # the status alone: the document is read
                doc = get_run(run_id, rt)
                if doc.status in TERMINAL_RUN_STATES:
                    return doc
            status = rt.store.get_run(run_id).status


__all__ = [
    "RunDocument",
    "RunStatus",
    "WfrunnerError",
    "get_run",
    "list_runs",
    "register_workflow",
    "submit_run",
    "wait_for_run",
]
