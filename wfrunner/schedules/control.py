"""Operator actions on a schedule (CLI and API share them)."""

from __future__ import annotations

from datetime import UTC, datetime

from wfrunner.runtime import Runtime
from wfrunner.schedules import timing
from wfrunner.schedules.spec import ScheduleSpec
from wfrunner.store.schedules import ScheduleRecord


def set_paused(rt: Runtime, name: str, paused: bool) -> ScheduleRecord:
    """Pause or resume ``name``'s schedule; a resumed one counts from now."""
    now = datetime.now(UTC)
    record = rt.store.set_schedule_paused(name, paused, now)
    if not paused:
        spec = ScheduleSpec.from_definition(record.spec)
        rt.store.save_schedule(
            name, record.workflow_id, record.spec, now, timing.next_fire(spec, now)
        )
        record = rt.store.get_schedule(name)
    return record
