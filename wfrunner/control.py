"""The operator's Python API: cancel, pause, resume or rerun a run, decide a human node's
approval.

Each returns the run's document after the change (what ``wfrunner.get_run`` reads), and
raises :class:`~wfrunner.errors.NotFoundError` for an unknown run or node and
:class:`~wfrunner.errors.ConflictError` when the run's state does not allow it (it has
ended; the approval is not waiting or was decided). The CLI and the REST API call these.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from wfrunner import approvals, cancellation, pausing, redrive
from wfrunner.client import get_run
from wfrunner.documents import RunDocument
from wfrunner.runtime import Runtime, runtime
from wfrunner.states import RunStatus

log = logging.getLogger(__name__)


def cancel_run(
    run_id: str,
    reason: str | None = None,
    *,
    by: str | None = None,
    terminate: bool = True,
    rt: Runtime | None = None,
) -> RunDocument:
    """Cancel the run: no node of it starts again, it ends CANCELLED (once), and with
    ``terminate`` the Celery tasks running its nodes are revoked with terminate (prefork:
    their pool processes get SIGTERM)."""
    rt = rt or runtime()
    done = cancellation.cancel(rt, run_id, reason, by)
    if terminate and done.running_tasks:
        from wfrunner.tasks.app import app

        try:
            app.control.revoke(list(done.running_tasks), terminate=True, signal="SIGTERM")
        except Exception as exc:  # the run is cancelled: its handlers' commits are refused
            log.warning("run %s: running tasks not revoked (%s)", run_id, exc)
    return get_run(run_id, rt)


def decide_approval(
    run_id: str,
    node_id: str,
    decision: str,
    *,
    comment: str | None = None,
    by: str | None = None,
    data: Any = None,
    rt: Runtime | None = None,
) -> RunDocument:
    """Approve (``decision="approve"``) or reject a waiting human node; ``data`` (JSON)
    becomes part of the node's output (``output.data``)."""
    from wfrunner.tasks.execution import dispatch

    rt = rt or runtime()
    made = approvals.decide(rt, run_id, node_id, decision, comment=comment, by=by, data=data)
    if made.waiting <= 0:
        rt.store.transition_run(run_id, RunStatus.RUNNING, from_states=[RunStatus.WAITING])
    # should this publish be lost, the reconciler publishes the token (it is due now)
    dispatch([made.token], made.workflow_id, rt.ir(made.workflow_id))
    return get_run(run_id, rt)


def approve(run_id: str, node_id: str, **options: Any) -> RunDocument:
    """Approve a waiting human node: its successors run with the decision as its output."""
    return decide_approval(run_id, node_id, "approve", **options)


def reject(run_id: str, node_id: str, **options: Any) -> RunDocument:
    """Reject a waiting human node: the node and its run fail with the comment."""
    return decide_approval(run_id, node_id, "reject", **options)


def pause_run(
    run_id: str, reason: str | None = None, *, by: str | None = None, rt: Runtime | None = None
) -> RunDocument:
    """Pause the run: no node of it starts until :func:`resume_run`; the nodes running
    finish and commit (see :mod:`wfrunner.pausing`)."""
    rt = rt or runtime()
    pausing.pause(rt, run_id, reason, by)
    return get_run(run_id, rt)


def resume_run(run_id: str, *, by: str | None = None, rt: Runtime | None = None) -> RunDocument:
    """Resume a paused run where it stopped: its pending tokens are published again."""
    from wfrunner.tasks.execution import dispatch, publishing

    rt = rt or runtime()
    done = pausing.resume(rt, run_id, by)
    ir = rt.ir(done.workflow_id)
    # should a publish be lost, the reconciler publishes the token once the run is idle
    with publishing() as producer:
        for token, delay in done.tokens:
            dispatch([token], done.workflow_id, ir, countdown=delay or None, producer=producer)
    return get_run(run_id, rt)


def rerun(
    run_id: str,
    from_node: str | None = None,
    *,
    reason: str | None = None,
    by: str | None = None,
    rt: Runtime | None = None,
) -> RunDocument:
    """Rerun a FAILED or CANCELLED run as a new attempt of the same run: from its failed
    nodes (the completed ones keep their outputs), or with ``from_node`` from that node
    and everything downstream of it (see :mod:`wfrunner.redrive`)."""
    from wfrunner.tasks.execution import dispatch

    rt = rt or runtime()
    done = redrive.redrive(rt, run_id, from_node, reason=reason, by=by)
    # should a publish be lost, the reconciler publishes the tokens (the run is idle)
    for each in _children_first(done):  # a child's rerun first: its parent waits for it
        dispatch(each.tokens, each.workflow_id, rt.ir(each.workflow_id))
    return get_run(run_id, rt)


def _children_first(done: redrive.Redriven) -> Iterator[redrive.Redriven]:
    for child in done.children:
        yield from _children_first(child)
    yield done
