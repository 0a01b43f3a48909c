"""The body of ``wfrunner.fire_schedules``, which Celery beat sends every
WFRUNNER_SCHEDULE_INTERVAL seconds: start the runs each schedule has due.

Each schedule is claimed alone (its PostgreSQL row, locked with SKIP LOCKED), so two beats,
or two workers running ticks at once, never fire one time twice. A run a schedule starts
has a run id made from the schedule's name and the fire time: should a tick die after it
sent the start but before it recorded the fire, the next tick sends the same run id again,
and a start is idempotent per run id (the run exists: nothing new starts).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from wfrunner.errors import ConflictError, NotFoundError
from wfrunner.runtime import Runtime
from wfrunner.schedules import timing
from wfrunner.schedules.spec import ScheduleSpec
from wfrunner.states import ACTIVE_RUN_STATES, RunStatus
from wfrunner.store.schedules import ScheduleClaim

log = logging.getLogger(__name__)

#: the namespace of schedule run ids (uuid5 of "name@fire time")
RUN_NAMESPACE = uuid.UUID("6f1c1d1e-6a44-4c52-9a55-3b7f0e2b9c11")

#: a ``catch_up: none`` fire still counts as on time this long after it was due, at least
MIN_GRACE = timedelta(seconds=60)


def run_id_of(name: str, fire_time: datetime) -> str:
    """The run id of a schedule's fire: the same for the same (schedule, time)."""
    return uuid.uuid5(RUN_NAMESPACE, f"{name}@{fire_time.astimezone(UTC).isoformat()}").hex


def grace(interval: float) -> timedelta:
    """How late a tick may see a fire time and still fire it under ``catch_up: none``:
    two ticks, so one slow or lost tick misses nothing, and never under a minute."""
    return max(MIN_GRACE, timedelta(seconds=2 * interval))


@dataclass
class TickReport:
    """What a tick did, by schedule name (the task's result, and the tests' evidence)."""

    started: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    cancelled: dict[str, list[str]] = field(default_factory=dict)
    held_elsewhere: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v}


def fire_due(rt: Runtime, now: datetime | None = None, only: str | None = None) -> TickReport:
    """One tick: every active schedule (or ``only`` that one) fires what is due at
    ``now`` (default: the clock; tests pass a time)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = TickReport()
    names = [only] if only else [s.name for s in rt.store.list_schedules()]
    for name in names:
        try:
            _tick_one(rt, name, now, report)
        except Exception as exc:  # one schedule's trouble must not stop the others firing
            log.exception("schedule %s: this tick failed; the next one tries again", name)
            report.failed[name] = f"{type(exc).__name__}: {exc}"
    return report


def _tick_one(rt: Runtime, name: str, now: datetime, report: TickReport) -> None:
    """One schedule's tick, in the transaction that holds its row: should it fail, nothing
    of it is recorded and the next tick handles the same times again (a run it sent is
    found again by its run id, not started twice)."""
    with rt.store.claim_schedule(name) as claim:
        if claim is None:
            report.held_elsewhere.append(name)
            return
        spec = ScheduleSpec.from_definition(claim.schedule.spec)
        if claim.schedule.paused or not spec.enabled:
            return
        _Tick(rt, claim, spec, report).run(now, grace(rt.settings.schedule_interval))


def fire_now(rt: Runtime, name: str, now: datetime | None = None) -> TickReport:
    """``wfrunner schedules fire NAME``: one fire at ``now``, under the overlap policy,
    whatever the cron text (the schedule's clock is left as it is)."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    rt.store.get_schedule(name)  # NotFoundError names the schedules
    report = TickReport()
    with rt.store.claim_schedule(name) as claim:
        if claim is None:
            raise ConflictError(f"schedule '{name}' is being fired by a tick: try again")
        spec = ScheduleSpec.from_definition(claim.schedule.spec)
        tick = _Tick(rt, claim, spec, report)
        tick.fire(now)
        claim.advance(claim.schedule.last_fired_at, claim.schedule.next_fire_at, tick.last_run)
    return report


class _Tick:
    """One schedule's share of a tick, with the row held."""

    def __init__(
        self, rt: Runtime, claim: ScheduleClaim, spec: ScheduleSpec, report: TickReport
    ) -> None:
        self.rt, self.claim, self.spec, self.report = rt, claim, spec, report
        self.name = claim.schedule.name
        self.last_run = claim.schedule.last_run_id
        self.waiting = list(claim.waiting)
        self.queued_now = False

    def run(self, now: datetime, on_time: timedelta) -> None:
        self._start_waiting()
        due = timing.due(self.spec, self.claim.schedule.last_fired_at, now, on_time)
        if due.missed:
            self.claim.record(
                due.missed[-1],
                "missed",
                missed=len(due.missed),
                detail=f"catch_up {self.spec.catch_up}: {len(due.missed)} fire times from "
                f"{due.missed[0].isoformat()} passed over",
            )
            self.report.missed[self.name] = len(due.missed)
        for fire_time in due.fire:
            self.fire(fire_time)
        last = due.handled_through or self.claim.schedule.last_fired_at
        self.claim.advance(last, timing.next_fire(self.spec, max(now, last)), self.last_run)

    def fire(self, fire_time: datetime) -> None:
        waiting = bool(self.waiting) or self.queued_now
        action = timing.on_overlap(self.spec.overlap, self._previous_active(), waiting)
        if action is timing.Action.SKIP:
            self.claim.record(fire_time, "skipped", detail=f"run {self.last_run} still going")
            self._count(self.report.skipped)
        elif action is timing.Action.WAIT:
            self.claim.record(fire_time, "waiting", detail=f"behind run {self.last_run}")
            self.queued_now = True  # the tick's later fires wait behind this one
            self._count(self.report.waiting)
        else:
            detail = None
            if action is timing.Action.CANCEL_AND_START and self.last_run is not None:
                detail = self._cancel(self.last_run)
            self.claim.record(fire_time, "started", self._start(fire_time), detail=detail)

    def _start_waiting(self) -> None:
        """A ``queue`` schedule's oldest waiting fire starts once the run before it ended."""
        if self.waiting and not self._previous_active():
            fire = self.waiting.pop(0)
            self.claim.start_waiting(fire, self._start(fire.fire_time))

    def _previous_active(self) -> bool:
        if self.last_run is None:
            return False
        try:
            return self.rt.store.get_run(self.last_run).status in ACTIVE_RUN_STATES
        except NotFoundError:
            return False

    def _start(self, fire_time: datetime) -> str:
        """Record the run QUEUED and send its start, both idempotent per run id."""
        from wfrunner.tasks.runs import start_run

        run_id = run_id_of(self.name, fire_time)
        workflow_id = self.claim.schedule.workflow_id
        inputs = self.spec.inputs
        entries = len(self.rt.ir(workflow_id).entry_nodes)
        run = self.rt.store.create_run(workflow_id, inputs, entries, run_id=run_id)
        if run.status is RunStatus.QUEUED:  # else a tick that died after sending started it
            start_run.apply_async(args=[workflow_id], kwargs={"inputs": inputs}, task_id=run_id)
        self.last_run = run_id
        self.report.started.setdefault(self.name, []).append(run_id)
        return run_id

    def _cancel(self, run_id: str) -> str:
        from wfrunner.control import cancel_run

        try:
            cancel_run(
                run_id, f"schedule '{self.name}': a new fire replaces it", by="schedule", rt=self.rt
            )
        except ConflictError:  # it ended meanwhile
            return f"run {run_id} had ended"
        self.report.cancelled.setdefault(self.name, []).append(run_id)
        return f"cancelled run {run_id}"

    def _count(self, counts: dict[str, int]) -> None:
        counts[self.name] = counts.get(self.name, 0) + 1
