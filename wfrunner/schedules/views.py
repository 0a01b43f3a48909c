"""A schedule as ``wfrunner schedules`` and ``GET /schedules`` show it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrunner.errors import NotFoundError
from wfrunner.runtime import Runtime
from wfrunner.schedules.spec import ScheduleSpec
from wfrunner.store.schedules import ScheduleRecord


def schedule_view(rt: Runtime, record: ScheduleRecord) -> dict[str, Any]:
    """JSON values: the schedule's policy, state, clock and its last run with its status."""
    spec = ScheduleSpec.from_definition(record.spec)
    last_status = None
    if record.last_run_id is not None:
        try:
            last_status = rt.store.get_run(record.last_run_id).status.value
        except NotFoundError:
            last_status = None
    state = "paused" if record.paused else ("active" if spec.enabled else "disabled")
    return {
        "name": record.name,
        "workflow_id": record.workflow_id,
        "version": rt.workflow_version(record.workflow_id),
        "cron": spec.cron,
        "timezone": spec.timezone,
        "overlap": spec.overlap,
        "catch_up": spec.catch_up,
        "inputs": spec.inputs,
        "state": state,
        "next_fire_at": _iso(record.next_fire_at if state == "active" else None),
        "last_fired_at": _iso(record.last_fired_at),
        "last_run_id": record.last_run_id,
        "last_run_status": last_status,
    }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
