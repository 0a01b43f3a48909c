"""Rerunning an ended run from where it failed (``wfrunner rerun``): a redrive.

A FAILED or CANCELLED run (a timed-out one is FAILED) is made RUNNING again as a new
attempt of the same run id: PostgreSQL reopens it under a new hot-state generation with a
``run_redriven`` event (attempt number, who, why, ``--from``), and its hot state is
rebuilt from its event log as after a Redis loss (:func:`wfrunner.recovery.rebuild`).
The tokens that were emitted and never committed are pending again (the failed node's,
and those a cancellation cut short), with fresh attempt counts; every node that
completed keeps its output and does not run again. With ``--from NODE`` the rebuild also
leaves out what NODE and everything downstream of it did (:mod:`wfrunner.engine.rewind`):
they run again. Work of the ended attempt that still finishes is refused (the rebuilt
state has a new epoch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from wfrunner import fencing, recovery
from wfrunner.compiler.ir import IR
from wfrunner.engine import rewind, subflow
from wfrunner.engine.events import event, split
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError, NotFoundError
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus

log = logging.getLogger(__name__)

#: the statuses a run may be rerun from
RERUNNABLE = (RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class Redriven:
    run_id: str
    workflow_id: str
    #: the run's attempt now running (2 after its first rerun)
    attempt: int
    #: the tokens to publish
    tokens: list[Token]
    #: the child runs rerun with it (a subworkflow node whose child did not complete)
    children: tuple[Redriven, ...] = ()


def redrive(
    rt: Runtime,
    run_id: str,
    from_node: str | None = None,
    *,
    reason: str | None = None,
    by: str | None = None,
) -> Redriven:
    """Reopen the ended run and rebuild its hot state; the caller publishes the tokens.
    NotFoundError for an unknown run (or ``from_node``), ConflictError for a run that did
    not end FAILED or CANCELLED or a ``from_node`` that cannot be rerun from."""
    run = rt.store.get_run(run_id)
    if run.status not in RERUNNABLE:
        raise ConflictError(
            f"run '{run_id}' is {run.status.value}: only a FAILED or CANCELLED run can be rerun"
        )
    ir = rt.ir(run.workflow_id)
    events = [e.as_event() for e in rt.store.list_events(run_id)]
    if from_node is not None:
        kept = rewind.effective(ir, events)
        again = rewind.check_from(ir, kept, from_node)
        _refuse_completed_children(ir, kept, again, from_node)
    attempt = 2 + sum(1 for e in events if e["type"] == rewind.REDRIVEN)
    note = event(
        rewind.REDRIVEN,
        None,
        attempt=attempt,
        by=by,
        reason=reason,
        ended=run.status.value,
        error=run.error,
        **{"from": from_node},
    )
    # under the run's writer lock: the reconciler, which rebuilds an active run that has
    # no hot state, leaves it to this rebuild
    with fencing.writer(rt, run_id, wait=fencing.LOCK_TTL_MS / 1000) as held:
        if not held:
            raise ConflictError(f"run '{run_id}' is being written by another process: try again")
        reopened = rt.store.reopen_for_rerun(run_id, RERUNNABLE, split(note))
        if reopened is None:
            status = rt.store.get_run(run_id).status.value
            raise ConflictError(f"run '{run_id}' is {status} now: another rerun came first")
        tokens = recovery.rebuild(rt, run_id, note=False)
    log.warning("run %s rerun (attempt %d): %d tokens to publish", run_id, attempt, len(tokens))
    children = tuple(_rerun_children(rt, ir, run_id, tokens, by))
    return Redriven(run_id, run.workflow_id, attempt, tokens, children)


def _refuse_completed_children(
    ir: IR, events: list[dict[str, Any]], again: frozenset[str], from_node: str
) -> None:
    """A subworkflow node that completed cannot run again: its child run (the same id
    for its token) completed and is not started a second time."""
    for evt in events:
        node = evt.get("node")
        completed = evt["type"] == "node_completed" and node in again
        if completed and ir.nodes[str(node)].type == "subworkflow":
            raise ConflictError(
                f"node '{node}' (a subworkflow node) completed and would run again after "
                f"'{from_node}': its child run cannot be run a second time; rerun from a "
                f"node after '{node}'"
            )


def _rerun_children(
    rt: Runtime, ir: IR, run_id: str, tokens: list[Token], by: str | None
) -> list[Redriven]:
    """Rerun the child run of each subworkflow node that runs again and whose child did
    not complete: the node's delivery waits for that same child (its id is the token's),
    whose new end then decides the node."""
    rerun: list[Redriven] = []
    for token in tokens:
        if ir.nodes[token.to_node].type != "subworkflow":
            continue
        child = subflow.child_run_id(token)
        try:
            status = rt.store.get_run(child).status
        except NotFoundError:
            continue  # never started: the node's delivery starts it
        if status in RERUNNABLE:
            rerun.append(redrive(rt, child, reason=f"its parent run {run_id} was rerun", by=by))
    return rerun
