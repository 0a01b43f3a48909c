"""Cancelling a run: no node of it starts again, the running ones are asked to stop, and it
ends CANCELLED once, its history showing what was cut short.

The run is ended in Redis first (``lua/cancel_run.lua``): from then on every script
refuses its tokens, so nothing new starts and nothing running can commit. Its end is then
recorded as any run's is (:func:`wfrunner.lifecycle.finish`). The Celery tasks running
its nodes are revoked with ``terminate``: under the prefork pool the pool process running
the handler gets SIGTERM (the handler stops at once; its message comes back and is
dropped, the run having ended). Under the threads or gevent pools Celery cannot terminate
a task, and a running handler finishes its work, whose commit is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from wfrunner import aftermath, ended, lifecycle
from wfrunner.engine.events import event
from wfrunner.engine.leases import task_of
from wfrunner.errors import ConflictError
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cancelled:
    run_id: str
    error: str
    #: Celery task ids of the deliveries that were running the run's nodes
    running_tasks: tuple[str, ...]


def reason_text(reason: str | None, by: str | None) -> str:
    who = f" by {by}" if by else ""
    why = f": {reason}" if reason else ""
    return f"cancelled{who}{why}"


def cancel(rt: Runtime, run_id: str, reason: str | None = None, by: str | None = None) -> Cancelled:
    """End the run CANCELLED; ConflictError when it has ended already, NotFoundError when
    there is no such run. Revoking its running tasks is the caller's (it needs Celery)."""
    run = rt.store.get_run(run_id)
    if run.status in TERMINAL_RUN_STATES:
        raise _ended(run_id, run.status)
    error = reason_text(reason, by)
    changed, state, holders = rt.state.cancel(
        run_id, error, event("run_cancelled", error=error, by=by, reason=reason)
    )
    if changed:
        lifecycle.finish(rt, run_id)
        tasks = tuple(task for task in map(task_of, holders) if task)
        return Cancelled(run_id, error, tasks)
    if state != "gone":
        raise _ended(run_id, RunStatus(state.upper()))
    # no hot state: not started yet (QUEUED), or being rebuilt from PostgreSQL
    if rt.store.transition_run(run_id, RunStatus.CANCELLED, error=error):
        ended.announce(rt, run_id, RunStatus.CANCELLED)
        aftermath.run_ended(rt, run, RunStatus.CANCELLED, rt.ir(run.workflow_id))
        return Cancelled(run_id, error, ())
    raise _ended(run_id, rt.store.get_run(run_id).status)


def _ended(run_id: str, status: RunStatus) -> ConflictError:
    return ConflictError(f"run '{run_id}' has already ended ({status.value}): nothing to cancel")
