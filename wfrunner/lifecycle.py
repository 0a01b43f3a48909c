"""A run's life outside its nodes: starting it, finishing it, and failing idle ones.

PostgreSQL holds the run's record and, once it ends, its history; Redis holds it while it
runs. ``finish`` is the only place a run's hot state is copied to PostgreSQL and removed,
and it is idempotent, so any number of completion checks or detector passes may call it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from wfrunner import history
from wfrunner.engine import completion, leases
from wfrunner.engine.events import event, split
from wfrunner.engine.payloads import encode_payload
from wfrunner.engine.runstate import GONE, RUNNING
from wfrunner.engine.tokens import Token
from wfrunner.errors import PayloadError
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus

log = logging.getLogger(__name__)

#: the ``by`` of the entry tokens' token_emitted events
START = "start"

_END_STATES = {
    "completed": RunStatus.COMPLETED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
}


def start(rt: Runtime, run_id: str, workflow_id: str, inputs: Any) -> list[Token]:
    """Create (or find) the run and make it live; returns the entry tokens to dispatch."""
    ir = rt.ir(workflow_id)
    rt.store.create_run(workflow_id, inputs, len(ir.entry_nodes), run_id=run_id)
    try:
        _, inputs_json = encode_payload(inputs, rt.settings.max_payload_bytes)
    except PayloadError as exc:
        rt.store.transition_run(run_id, RunStatus.FAILED, error=f"run inputs rejected: {exc}")
        return []
    entries = [Token.entry(run_id, node_id) for node_id in ir.entry_nodes]
    events = [event("run_started", workflow_id=workflow_id)] + [
        event(
            "token_emitted",
            None,
            to=t.to_node,
            scope="",
            token=t.to_dict(),
            by=START,
            **{"from": None},
        )
        for t in entries
    ]
    started, state = rt.state.start(run_id, workflow_id, inputs_json, entries, time.time(), events)
    if state != RUNNING:
        return []
    if started:
        # the entry tokens are in PostgreSQL from the start: a lost Redis can always restart
        rt.store.import_events(run_id, 1, [split(e) for e in events])
        rt.state.mark_flushed(run_id, len(events))
    rt.store.transition_run(run_id, RunStatus.RUNNING, from_states=[RunStatus.QUEUED])
    return entries


def check_completion(rt: Runtime, run_id: str) -> str:
    """The completion double-check, finishing the run when it has ended."""
    meta = rt.state.meta(run_id)
    if not meta:
        return GONE
    rt.store.increment_stats(run_id, completion_checks=1)
    verdict = completion.check(rt.state, rt.ir(meta["workflow_id"]), run_id, meta)
    if verdict in _END_STATES:
        finish(rt, run_id)
    return verdict


def finish(rt: Runtime, run_id: str) -> RunStatus | None:
    """Copy an ended run's history to PostgreSQL, record its end state, drop its hot keys."""
    meta = rt.state.meta(run_id)
    status = _END_STATES.get(meta.get("state", ""))
    if status is None:
        return None
    events = rt.state.events(run_id)
    payloads = rt.state.all_payloads(run_id)
    rt.store.persist_history(
        run_id,
        [split(e) for e in events],
        payloads,
        history.execution_rows(events, payloads),
        history.loop_passes(events),
        history.statistics(events),
        history.dead_letters(events),
    )
    rt.store.transition_run(run_id, status, error=meta.get("error") or None)
    rt.state.delete(run_id)
    log.info("run %s ended %s", run_id, status.value)
    return status


def fail(rt: Runtime, run_id: str, error: str, kind: str = "failed") -> bool:
    """End a run from outside its nodes (timeout, cancellation); False if it had ended."""
    evt = event("run_cancelled" if kind == "cancelled" else "run_failed", error=error)
    stopped = rt.state.end(run_id, kind, error, [evt])
    if stopped or rt.state.meta(run_id):
        finish(rt, run_id)
        return stopped
    status = RunStatus.CANCELLED if kind == "cancelled" else RunStatus.FAILED
    return rt.store.transition_run(run_id, status, error=error)


def expire_idle_runs(rt: Runtime) -> list[str]:
    """Fail runs with no activity for WFRUNNER_RUN_TIMEOUT seconds; returns their ids.

    A node that is running (its lease is live) or a retry that is not yet due is
    activity: a long node or a long backoff does not time its run out.
    """
    timeout = rt.settings.run_timeout
    failed = []
    for run_id in rt.store.find_idle_runs(timeout):
        meta = rt.state.meta(run_id)
        idle_for = time.time() - float(meta.get("activity", 0) or 0)
        if meta.get("state") == RUNNING and (idle_for < timeout or _busy(rt, run_id)):
            rt.store.touch_run(run_id)
            continue
        error = f"run timed out: no activity for {timeout} s (WFRUNNER_RUN_TIMEOUT)"
        if fail(rt, run_id, error):
            failed.append(run_id)
    return failed


def _busy(rt: Runtime, run_id: str) -> bool:
    return leases.busy(rt.state.leases(run_id), rt.state.clock())
