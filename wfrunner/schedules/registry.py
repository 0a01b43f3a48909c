"""Registering a workflow registers its name's schedule: the latest version's
``schedule`` field wins, and a latest version without one removes it."""

from __future__ import annotations

from datetime import UTC, datetime

from wfrunner.runtime import Runtime
from wfrunner.schedules import timing
from wfrunner.schedules.spec import ScheduleSpec
from wfrunner.store import WorkflowRecord


def sync(rt: Runtime, stored: WorkflowRecord, now: datetime | None = None) -> None:
    """Make the schedule of ``stored``'s name that of its latest version. Registering an
    older definition again (which answers with its old version) changes nothing."""
    latest = rt.store.resolve_workflow(stored.name)
    if latest.id != stored.id:
        return
    raw = stored.definition.get("schedule")
    if not isinstance(raw, dict):
        if raw is None:
            rt.store.save_schedule(stored.name, stored.id, None, _now(now), None)
        return
    spec = ScheduleSpec.from_definition(raw)
    clock = _now(now)
    rt.store.save_schedule(stored.name, stored.id, raw, clock, timing.next_fire(spec, clock))


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)
