"""Schedules and their fires in PostgreSQL.

A tick claims one schedule at a time with ``SELECT ... FOR UPDATE SKIP LOCKED``: a second
tick running at the same moment (two beats, or a slow tick overtaken by the next) passes
over a schedule the first holds, and reads it again only once the first has committed its
new ``last_fired_at``. The fires are unique per (schedule, time) as a second guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from wfrunner.errors import NotFoundError
from wfrunner.store.base import Repository
from wfrunner.store.models import Schedule, ScheduleFire
from wfrunner.store.records import _Record

#: fires ``wfrunner schedules`` shows per schedule at most
FIRES_SHOWN = 20


@dataclass(frozen=True, slots=True)
class ScheduleRecord(_Record):
    name: str
    workflow_id: str
    spec: dict[str, Any]
    paused: bool
    last_fired_at: datetime
    next_fire_at: datetime | None
    last_run_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FireRecord(_Record):
    id: int
    schedule_name: str
    fire_time: datetime
    status: str
    run_id: str | None
    missed: int
    detail: str | None
    created_at: datetime


@dataclass
class ScheduleClaim:
    """A schedule held by one tick: what it reads and the changes it makes, written in the
    transaction that holds the row when the tick is done with it."""

    schedule: ScheduleRecord
    waiting: list[FireRecord]
    _session: Session
    _fires: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self,
        fire_time: datetime,
        status: str,
        run_id: str | None = None,
        *,
        missed: int = 0,
        detail: str | None = None,
    ) -> None:
        self._fires.append(
            {
                "schedule_name": self.schedule.name,
                "fire_time": fire_time,
                "status": status,
                "run_id": run_id,
                "missed": missed,
                "detail": detail,
            }
        )

    def start_waiting(self, fire: FireRecord, run_id: str) -> None:
        self._session.execute(
            sa.update(ScheduleFire)
            .where(ScheduleFire.id == fire.id)
            .values(status="started", run_id=run_id)
        )

    def advance(
        self, last_fired_at: datetime, next_fire_at: datetime | None, last_run_id: str | None
    ) -> None:
        if self._fires:
            # a time recorded by a tick that died before its commit was never recorded:
            # the unique key only guards against a writer outside the row lock
            self._session.execute(
                pg_insert(ScheduleFire)
                .values(self._fires)
                .on_conflict_do_nothing(index_elements=["schedule_name", "fire_time"])
            )
        self._session.execute(
            sa.update(Schedule)
            .where(Schedule.name == self.schedule.name)
            .values(
                last_fired_at=last_fired_at,
                next_fire_at=next_fire_at,
                last_run_id=last_run_id,
                updated_at=sa.func.now(),
            )
        )


class ScheduleQueries(Repository):
    def save_schedule(
        self,
        name: str,
        workflow_id: str,
        spec: dict[str, Any] | None,
        now: datetime,
        next_fire_at: datetime | None,
    ) -> None:
        """Make ``spec`` the schedule of ``name`` (None: it has none). A new schedule
        counts from ``now``: the past is not fired. An updated one keeps its clock and
        whether an operator paused it."""
        with self._tx() as session:
            if spec is None:
                session.execute(sa.delete(Schedule).where(Schedule.name == name))
                return
            session.execute(
                pg_insert(Schedule)
                .values(
                    name=name,
                    workflow_id=workflow_id,
                    spec=spec,
                    last_fired_at=now,
                    next_fire_at=next_fire_at,
                )
                .on_conflict_do_update(
                    index_elements=[Schedule.name],
                    set_={
                        "workflow_id": workflow_id,
                        "spec": spec,
                        "next_fire_at": next_fire_at,
                        "updated_at": sa.func.now(),
                    },
                )
            )

    def list_schedules(self) -> list[ScheduleRecord]:
        with self._tx() as session:
            rows = session.execute(sa.select(Schedule.__table__).order_by(Schedule.name)).all()
        return [ScheduleRecord.from_row(row._mapping) for row in rows]

    def get_schedule(self, name: str) -> ScheduleRecord:
        with self._tx() as session:
            row = session.execute(
                sa.select(Schedule.__table__).where(Schedule.name == name)
            ).first()
            if row is not None:
                return ScheduleRecord.from_row(row._mapping)
            names = list(
                session.execute(sa.select(Schedule.name).order_by(Schedule.name)).scalars()
            )
        known = ", ".join(names[:20]) if names else "none"
        raise NotFoundError(f"no schedule for a workflow named '{name}' (schedules: {known})")

    def set_schedule_paused(self, name: str, paused: bool, now: datetime) -> ScheduleRecord:
        """Pause or resume; a resumed schedule counts from ``now`` (what it would have
        fired while paused is not fired)."""
        self.get_schedule(name)  # NotFoundError names the schedules
        values: dict[str, Any] = {"paused": paused, "updated_at": sa.func.now()}
        if not paused:
            values["last_fired_at"] = now
        with self._tx() as session:
            session.execute(
                sa.update(Schedule)
                .where(Schedule.name == name, Schedule.paused.is_not(paused))
                .values(**values)
            )
        return self.get_schedule(name)

    def list_fires(self, name: str, limit: int = FIRES_SHOWN) -> list[FireRecord]:
        """A schedule's fires, the latest first."""
        with self._tx() as session:
            rows = session.execute(
                sa.select(ScheduleFire.__table__)
                .where(ScheduleFire.schedule_name == name)
                .order_by(ScheduleFire.fire_time.desc())
                .limit(limit)
            ).all()
        return [FireRecord.from_row(row._mapping) for row in rows]

    @contextmanager
    def claim_schedule(self, name: str) -> Iterator[ScheduleClaim | None]:
        """Hold the schedule's row for one tick (None: another tick holds it, or it is
        gone); the claim's changes are committed when the block ends without error."""
        with self._tx() as session:
            row = session.execute(
                sa.select(Schedule.__table__)
                .where(Schedule.name == name)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                yield None
                return
            waiting = session.execute(
                sa.select(ScheduleFire.__table__)
                .where(ScheduleFire.schedule_name == name, ScheduleFire.status == "waiting")
                .order_by(ScheduleFire.fire_time)
            ).all()
            yield ScheduleClaim(
                ScheduleRecord.from_row(row._mapping),
                [FireRecord.from_row(w._mapping) for w in waiting],
                session,
            )
