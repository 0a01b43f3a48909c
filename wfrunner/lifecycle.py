"""A run's life outside its nodes: starting it, finishing it, and failing idle ones.

PostgreSQL holds the run's record and, once it ends, its history; Redis holds it while it
runs. ``finish`` is the only place a run's hot state is removed after its end is recorded.
It runs once per run whatever the number of completion checks and reconciler passes that
call it: one writer at a time holds the run's lock, and PostgreSQL records the end and the
history in one transaction only while the run is active and only from the hot state's
current generation (:mod:`wfrunner.fencing`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from wfrunner import aftermath, ended, fencing, history, runlimits, subflows, telemetry
from wfrunner.engine import completion, keys, leases
from wfrunner.engine.events import event, split
from wfrunner.engine.payloads import encode_payload
from wfrunner.engine.runstate import GONE, PAUSED, RUNNING, CompletionView, EndedState, RunEnd
from wfrunner.engine.tokens import Token
from wfrunner.errors import PayloadError
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus
from wfrunner.store import EndedHistory, Fence, RunView

log = logging.getLogger(__name__)

#: the ``by`` of the entry tokens' token_emitted events
START = "start"

_END_STATES = {
    "completed": RunStatus.COMPLETED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
}


def start(rt: Runtime, run_id: str, workflow_id: str, inputs: Any) -> list[Token]:
    """Make the run RUNNING and live; returns the entry tokens to dispatch.

    One PostgreSQL transaction records the run RUNNING with its first history (the entry
    tokens: the recovery point), then Redis is made live from it. Should the worker die
    between the two, the run is RUNNING with no hot state: the reconciler rebuilds it from
    that history, which gives the same state a start gives (see :mod:`wfrunner.recovery`).
    """
    ir = rt.ir(workflow_id)
    try:
        _, inputs_json = encode_payload(inputs, rt.settings.max_payload_bytes)
    except PayloadError as exc:
        rt.store.create_run(workflow_id, inputs, len(ir.entry_nodes), run_id=run_id)
        if rt.store.transition_run(run_id, RunStatus.FAILED, error=f"run inputs rejected: {exc}"):
            _ended_outside(rt, run_id, RunStatus.FAILED)
        return []
    if ir.max_runs is not None and not runlimits.admit(rt, run_id, workflow_id, inputs, ir):
        return []  # QUEUED until a run of its workflow ends and frees a slot for it
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
    run, created = rt.store.persist_start(
        run_id, workflow_id, inputs, len(entries), [split(e) for e in events]
    )
    if not created and (run.status is not RunStatus.RUNNING or not rt.state.meta(run_id)):
        # a start message delivered again: for an ended run, nothing; for a run with no hot
        # state (its first start died before Redis, or Redis lost it since) the reconciler
        # rebuilds it from PostgreSQL, never a fresh start over a history that went on
        return []
    _, state = rt.state.start(
        run_id, workflow_id, inputs_json, entries, time.time(), events, gen=run.hot_gen
    )
    if state != RUNNING:
        return []
    telemetry.run_started(rt, workflow_id)
    return entries


def check_completion(rt: Runtime, run_id: str, seen: CompletionView | None = None) -> str:
    """The completion double-check, finishing the run when it has ended. ``seen``: the
    view the commit that took the counter to 0 read and counted as a check (the check
    then makes no read of its own)."""
    # completion_view counts the check: the run's end records it
    view = seen or rt.state.completion_view(run_id)
    if not view.meta:
        return GONE
    verdict, end = completion.decide(rt.ir(view.meta["workflow_id"]), view)
    if verdict in _END_STATES:
        finish(rt, run_id, end)
    return verdict


def finish(rt: Runtime, run_id: str, end: RunEnd | None = None) -> RunStatus | None:
    """Record an ended run's end and history in PostgreSQL and drop its hot keys; the
    status recorded, or None when this call recorded nothing (the run is not ended in
    Redis, another call finished it, or PostgreSQL refused stale hot state). ``end``: the
    completion check's verdict, recorded in Redis in the same round trip as the lock is
    taken and the hot state read (it ends the run only while it is running)."""
    read: list[EndedState] = []

    def lock_and_read(holder: str) -> bool:
        read.append(rt.state.ended_state(run_id, lock=(holder, fencing.LOCK_TTL_MS), end=end))
        return read[-1].locked

    with fencing.writer(rt, run_id, fencing.LOCK_TTL_MS / 1000, first=lock_and_read) as held:
        if not held:
            log.warning("run %s: another writer kept its lock; the reconciler finishes it", run_id)
            return None
        # read with the lock, unless the lock came on a later attempt
        hot = read[0] if read[0].locked else rt.state.ended_state(run_id)
        meta, tail, payloads = hot.meta, hot.tail, hot.payloads
        status = _END_STATES.get(meta.get("state", ""))
        if status is None:
            return None
        flushed, trimmed = fencing.position(meta)
        gen = fencing.generation(meta)
        ir = rt.ir(meta["workflow_id"])
        nodes = ir.nodes
        written: list[dict[str, Any]] = []
        letters: list[int] = []

        def to_write(head: list[dict[str, Any]]) -> EndedHistory:
            """The history to write, from the events Redis trimmed (read in the same
            transaction) and those it holds: only events PostgreSQL lacks are sent."""
            events = head + tail
            written[:] = events
            dead_letters = history.dead_letters(events)
            letters[:] = [len(dead_letters)]
            return EndedHistory(
                first_seq=flushed + 1,
                events=[split(e) for e in events[flushed:]],
                payloads=payloads,
                executions=history.execution_rows(events, payloads),
                loops=history.loop_passes(events),
                stats=history.statistics(events, history.progress(nodes, events), ended=True),
                completion_checks=hot.checks,
                dead_letters=dead_letters,
            )

        verdict, view = rt.store.persist_end(
            run_id, gen, status, meta.get("error") or None, to_write, stored_through=trimmed
        )
        if verdict is not Fence.ACCEPTED or view is None:
            fencing.refused(rt, run_id, verdict, gen)
            return None
        document = None
        if hot.waiters:  # they are handed the document, not sent to PostgreSQL for it
            document = _document(view, nodes, written, payloads, _label(rt, view.run.workflow_id))
        # the hot keys, the lock and the announcement go in one round trip
        rt.state.drop(run_id, held.holder, ended.announcement(run_id, status, document))
        held.released = True
    log.info("run %s ended %s", run_id, status.value)
    telemetry.run_ended(rt, view.run, status, sum(letters))
    aftermath.run_ended(
        rt, view.run, status, ir, lambda: subflows.child_output(ir, written, payloads)
    )
    return status


def _label(rt: Runtime, workflow_id: str) -> tuple[str, int]:
    """The workflow's name and version, as the run document shows them (cached: no read)."""
    return rt.workflow_name(workflow_id), rt.workflow_version(workflow_id)


def _document(
    view: RunView,
    nodes: Iterable[str],
    events: list[dict[str, Any]],
    outputs: dict[str, Any],
    workflow: tuple[str, int],
) -> dict[str, Any] | None:
    """The ended run's document, as ``get_run`` now reads it; None if an output it shows
    is not among those Redis held (the waiters then read it themselves)."""

    def load(refs: list[str]) -> list[Any]:
        return [outputs[ref] for ref in refs]

    try:
        return history.document(view.run, nodes, events, view.stats, load, workflow)
    except KeyError:
        return None


def fail(rt: Runtime, run_id: str, error: str, kind: str = "failed", **found: Any) -> bool:
    """End a run from outside its nodes (timeout, cancellation); False if it had ended.
    ``found``: what the caller found, kept in the event (the timeout detector's findings)."""
    evt = event("run_cancelled" if kind == "cancelled" else "run_failed", error=error, **found)
    stopped = rt.state.end(run_id, kind, error, [evt])
    if stopped or rt.state.meta(run_id):
        finish(rt, run_id)
        return stopped
    status = RunStatus.CANCELLED if kind == "cancelled" else RunStatus.FAILED
    if not rt.store.transition_run(run_id, status, error=error):
        return False
    _ended_outside(rt, run_id, status)
    return True


def _ended_outside(rt: Runtime, run_id: str, status: RunStatus) -> None:
    """A run ended with no hot state (it never started, or Redis lost it): announced,
    and counted (a read of its record: this is no node's path)."""
    ended.announce(rt, run_id, status)
    run = rt.store.get_run(run_id)
    telemetry.run_ended(rt, run, status)
    aftermath.run_ended(rt, run, status, rt.ir(run.workflow_id))


def expire_idle_runs(rt: Runtime) -> list[str]:
    """Fail runs with no activity for WFRUNNER_RUN_TIMEOUT seconds; returns their ids.

    A node that is running (its lease is live) or a retry that is not yet due is
    activity: a long node or a long backoff does not time its run out.

    The pass costs the runs that are due, not every active run: PostgreSQL's
    ``last_activity_at`` (indexed with the status) moves with each flush of a run's
    history, at most every ``WFRUNNER_FLUSH_INTERVAL`` s while it progresses, so a
    progressing run is never a candidate. A candidate found busy (a long node, a retry's
    backoff, an approval, a slot wait) is touched, all in one UPDATE, and is not a
    candidate again for another timeout period.
    """
    timeout = rt.settings.run_timeout
    failed = []
    rt.redis.hset(keys.PASSES_KEY, "detect_timeouts", time.time())  # wfrunner doctor reads it
    busy: list[str] = []
    for run_id in rt.store.find_idle_runs(timeout):
        meta = rt.state.meta(run_id)
        if not meta and runlimits.waits(rt, run_id):  # QUEUED for a slot: not stuck
            busy.append(run_id)
            continue
        idle_for = time.time() - float(meta.get("activity", 0) or 0)
        state = meta.get("state")
        # a paused run is idle on purpose (PostgreSQL lists it when its pause did not
        # reach PostgreSQL): it never times out
        if state == PAUSED or (state == RUNNING and (idle_for < timeout or _busy(rt, run_id))):
            busy.append(run_id)
            continue
        error = f"run timed out: no activity for {timeout} s (WFRUNNER_RUN_TIMEOUT)"
        if fail(rt, run_id, error, **_found_idle(rt, run_id)):
            failed.append(run_id)
    rt.store.touch_runs(busy)
    return failed


def _found_idle(rt: Runtime, run_id: str) -> dict[str, Any]:
    """What ``wfrunner doctor`` finds in a run the detector fails, for its run_failed event
    (``found``: one line per finding): why it was idle stays in the run's history."""
    from wfrunner.doctor import diagnose

    try:
        found = diagnose(run_id, rt, broker=False)
    except Exception as exc:  # a diagnosis is a courtesy: it must not keep the run alive
        log.warning("run %s: no diagnosis for its timeout (%s)", run_id, exc)
        return {}
    return {"detected_by": "timeout", "found": [f.summary for f in found.findings]}


def _busy(rt: Runtime, run_id: str) -> bool:
    return leases.busy(rt.state.leases(run_id), rt.state.clock())
