"""Run-level tasks: start_run, check_completion (on its own queue), detect_timeouts (beat)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from wfrunner import lifecycle
from wfrunner.runtime import runtime
from wfrunner.tasks.app import app
from wfrunner.tasks.execution import RETRY_ON, dispatch

log = logging.getLogger(__name__)


@app.task(name="wfrunner.start_run", bind=True, autoretry_for=RETRY_ON, retry_backoff=True)
def start_run(self: Task, workflow_id: str, inputs: Any = None) -> str:
    """Start a run of a registered workflow; the result (and the task id) is the run id."""
    run_id = str(self.request.id)
    tokens = lifecycle.start(runtime(), run_id, workflow_id, inputs)
    dispatch(tokens, workflow_id)
    return run_id


@app.task(name="wfrunner.check_completion", autoretry_for=RETRY_ON, retry_backoff=True)
def check_completion(run_id: str) -> str:
    """Double-check a run whose counter may have reached 0, or that has failed."""
    return lifecycle.check_completion(runtime(), run_id)


@app.task(name="wfrunner.detect_timeouts")
def detect_timeouts() -> list[str]:
    """Fail runs idle for longer than WFRUNNER_RUN_TIMEOUT (scheduled by Celery beat)."""
    failed = lifecycle.expire_idle_runs(runtime())
    if failed:
        log.warning("timed out runs: %s", ", ".join(failed))
    return failed
