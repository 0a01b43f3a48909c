"""``wfrunner.on_run_failed``: the workflow's on_failure handler, after a run ended
FAILED (see wfrunner/failure_handler.py)."""

from __future__ import annotations

from wfrunner import failure_handler
from wfrunner.runtime import runtime
from wfrunner.tasks.app import app
from wfrunner.tasks.runs import _RETRIED


@app.task(name="wfrunner.on_run_failed", ignore_result=True, acks_late=True, **_RETRIED)
def on_run_failed(run_id: str) -> str:
    """Call the run's on_failure handler once; at-least-once delivery, recorded once."""
    return failure_handler.run(runtime(), run_id)
