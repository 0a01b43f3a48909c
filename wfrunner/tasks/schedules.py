"""``wfrunner.fire_schedules``: Celery beat's tick of the cron schedules (no scheduler
process of wfrunner's own: ``celery -A wfrunner beat`` sends it every
WFRUNNER_SCHEDULE_INTERVAL seconds, on the completion queue, expiring after one interval
so a backlog of ticks never piles up)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrunner.runtime import runtime
from wfrunner.schedules.firing import fire_due
from wfrunner.tasks.app import app


@app.task(name="wfrunner.fire_schedules", ignore_result=True)
def fire_schedules(now: str | None = None) -> dict[str, Any]:
    """Start the runs the schedules have due; ``now`` (ISO-8601) stands in for the clock
    (tests, and replaying a tick by hand)."""
    at = datetime.fromisoformat(now) if now is not None else None
    return fire_due(runtime(), at).to_dict()
