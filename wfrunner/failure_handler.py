"""The workflow's ``on_failure`` handler (docs/failures.md): called once when a run ends
FAILED (not when a node's failure was caught by its ``on_error`` node).

The run's end is recorded first; then the ``wfrunner.on_run_failed`` task is sent
(:mod:`wfrunner.aftermath`), at least once, under a task id made from the run id. The
task calls the handler with ``{run_id, workflow_id, node, error, inputs}`` and records
what came of it as one event on the ended run's log, ``failure_handler_ran`` (with the
handler's output) or ``failure_handler_failed`` (with its error), at most once whatever
the deliveries (:meth:`wfrunner.store.Store.append_event_once`). A delivery that finds
one recorded does not call the handler again. The handler's own failure never changes
the run's status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from wfrunner import handlers
from wfrunner.engine.events import event, split
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus

log = logging.getLogger(__name__)

RAN = "failure_handler_ran"
FAILED = "failure_handler_failed"
KINDS = (RAN, FAILED)


def task_id(run_id: str) -> str:
    """The on_run_failed task's id: one per run, whatever sends it."""
    return f"{run_id}-on-failure"


def request(run_id: str) -> None:
    """Send the run's on_run_failed task (its end is recorded already)."""
    from wfrunner.tasks.aftermath import on_run_failed

    on_run_failed.apply_async(args=[run_id], task_id=task_id(run_id))


#: seconds after a run's end before the reconciler sends its on_run_failed task again
#: (the first may still be queued or running), and for how long it does
RESEND_AFTER = 300.0
RESEND_WITHIN = 24 * 3600.0


def reconcile(rt: Runtime, after_s: float = RESEND_AFTER) -> list[str]:
    """Send again the on_run_failed task of FAILED runs whose handler's outcome is still
    not recorded ``after_s`` seconds after their end (its first message was lost: the
    broker refused it, or it was purged); the reconciler calls this every pass."""
    missing = rt.store.failed_without(KINDS, after_s, RESEND_WITHIN)
    for run_id in missing:
        request(run_id)
    return missing


def failed_node(events: Sequence[dict[str, Any]]) -> str | None:
    """The node whose failure failed the run (its last uncaught node_failed)."""
    for evt in reversed(events):
        if evt["type"] == "node_failed" and not evt.get("caught"):
            return str(evt.get("node"))
    return None


def run(rt: Runtime, run_id: str) -> str:
    """Call the run's on_failure handler and record it once: "ran", "failed" (the handler
    raised), "already" (recorded before) or "none" (no handler, or the run did not fail)."""
    record = rt.store.get_run(run_id)
    name = rt.ir(record.workflow_id).on_failure
    if not name or record.status is not RunStatus.FAILED:
        return "none"
    events = [e.as_event() for e in rt.store.list_events(run_id)]
    if any(e["type"] in KINDS for e in events):
        return "already"
    payload = {
        "run_id": run_id,
        "workflow_id": record.workflow_id,
        "node": failed_node(events),
        "error": record.error,
        "inputs": record.inputs,
    }
    try:
        output = handlers.lookup(name).fn(payload, {"function_name": name})
        told = event(RAN, None, handler=name, output=_json(output))
    except Exception as exc:
        log.warning("run %s: on_failure handler %r failed: %s", run_id, name, exc)
        told = event(FAILED, None, handler=name, error=f"{type(exc).__name__}: {exc}")
    kind, node, data = split(told)
    if not rt.store.append_event_once(run_id, kind, node, data, KINDS):
        return "already"
    return "ran" if kind == RAN else "failed"


def _json(value: Any) -> Any:
    """The handler's output as the event keeps it (its text when it is not JSON)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
