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

from wfrunner import fencing, recovery
from wfrunner.engine import rewind
from wfrunner.engine.events import event, split
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError
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
        rewind.check_from(ir, rewind.effective(ir, events), from_node)
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
    return Redriven(run_id, run.workflow_id, attempt, tokens)
