"""What follows a run's end, once PostgreSQL has recorded it: the workflow's on_failure
handler (a run that ended FAILED), the parent's waiting subworkflow node (a child run),
the children still running (a run that did not complete), and the slot of its
workflow's run limit (:mod:`wfrunner.runlimits`). Called from the places a
run's end is recorded (:mod:`wfrunner.lifecycle`, :mod:`wfrunner.cancellation`); for a
run with none of these it makes no call at all.

The end is recorded before: nothing here may undo it, so an error is logged and left to
the fallbacks (the reconciler decides a parent whose child's end was not passed on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wfrunner import failure_handler, runlimits, subflows
from wfrunner.compiler.ir import IR
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus
from wfrunner.store import RunRecord

log = logging.getLogger(__name__)


def run_ended(
    rt: Runtime,
    run: RunRecord,
    status: RunStatus,
    ir: IR,
    output: Callable[[], Any] = dict,
) -> None:
    """``output``: the run's output as a child (:func:`wfrunner.subflows.child_output`),
    computed only for a child run that completed."""
    try:
        if status is RunStatus.FAILED and ir.on_failure:
            failure_handler.request(run.id)
        if run.parent_run_id:
            given = output() if status is RunStatus.COMPLETED else None
            subflows.child_ended(rt, run, status, given)
        if status is not RunStatus.COMPLETED and subflows.has_subworkflows(ir):
            subflows.cancel_children(rt, run.id, status)
    except Exception:
        log.exception("run %s ended %s; what follows its end failed", run.id, status.value)
    if ir.max_runs is not None:  # its slot of its workflow's run limit (or queue place)
        runlimits.release(rt, run.id, run.workflow_id)
