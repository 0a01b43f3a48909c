"""Run-level tasks: start_run, check_completion (on its own queue), detect_timeouts (beat).

Only ``start_run`` stores a Celery result, the run id (``start_run.delay(...).get()`` is
the public way to wait for a run to exist, and surfaces an unknown workflow); every other
engine task ignores its result, so a run leaves one ``celery-task-meta-*`` key, not one
per token.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from wfrunner import lifecycle, poison, recovery
from wfrunner.errors import NotFoundError, StoreError, WfrunnerError
from wfrunner.runtime import runtime
from wfrunner.tasks.app import app
from wfrunner.tasks.execution import RETRY_ON, dispatch, publishing

log = logging.getLogger(__name__)


@app.task(
    name="wfrunner.start_run",
    bind=True,
    autoretry_for=(*RETRY_ON, StoreError),
    dont_autoretry_for=(NotFoundError,),
    retry_backoff=True,
    max_retries=30,
)
def start_run(self: Task, workflow_id: str, inputs: Any = None) -> str:
    """Start a run of a registered workflow; the result (and the task id) is the run id."""
    run_id = str(self.request.id)
    rt = runtime()
    tokens = lifecycle.start(rt, run_id, workflow_id, inputs)
    with publishing() as producer:
        dispatch(tokens, workflow_id, rt.ir(workflow_id), producer=producer)
    return run_id


@app.task(
    name="wfrunner.check_completion",
    ignore_result=True,
    autoretry_for=(*RETRY_ON, StoreError),
    dont_autoretry_for=(NotFoundError,),
    retry_backoff=True,
    max_retries=30,
)
def check_completion(run_id: str) -> str:
    """Double-check a run whose counter may have reached 0, or that has failed."""
    return lifecycle.check_completion(runtime(), run_id)


@app.task(
    name="wfrunner.flush_run",
    ignore_result=True,
    autoretry_for=(*RETRY_ON, StoreError),
    dont_autoretry_for=(NotFoundError,),
    retry_backoff=True,
    max_retries=30,
)
def flush_run(run_id: str) -> int:
    """Copy a running run's new events and outputs to PostgreSQL (its recovery point)."""
    return recovery.flush(runtime(), run_id)


@app.task(name="wfrunner.reconcile", ignore_result=True)
def reconcile() -> dict[str, int]:
    """Rebuild runs Redis lost, republish stalled tokens, finish unrecorded ends, move
    parked poison messages to the dead letters (beat)."""
    rt = runtime()
    try:
        poison.drain(rt)
    except WfrunnerError as exc:  # PostgreSQL away: the records wait in Redis
        log.warning("poison letters not moved to PostgreSQL yet: %s", exc)
    published = recovery.reconcile(rt)
    for run_id, tokens in published.items():
        workflow_id = rt.store.get_run(run_id).workflow_id
        with publishing() as producer:
            dispatch(tokens, workflow_id, rt.ir(workflow_id), producer=producer)
    return {run_id: len(tokens) for run_id, tokens in published.items()}


@app.task(name="wfrunner.detect_timeouts", ignore_result=True)
def detect_timeouts() -> list[str]:
    """Fail runs idle for longer than WFRUNNER_RUN_TIMEOUT (scheduled by Celery beat)."""
    failed = lifecycle.expire_idle_runs(runtime())
    if failed:
        log.warning("timed out runs: %s", ", ".join(failed))
    return failed
