"""Run lifecycle: guarded status transitions, activity tracking, per-run statistics."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from wfrunner.errors import NotFoundError
from wfrunner.states import ACTIVE_RUN_STATES, TERMINAL_RUN_STATES, RunStatus
from wfrunner.store.base import Repository
from wfrunner.store.events import events_of
from wfrunner.store.models import Run, RunStatistics, Workflow
from wfrunner.store.records import RunRecord, RunView

#: the statuses of runs with hot state in Redis (the reconciler's round)
_HOT = [RunStatus.RUNNING.value, RunStatus.WAITING.value, RunStatus.PAUSED.value]

#: the counters of ``run_statistics`` that :meth:`RunQueries.increment_stats` accepts
STAT_COLUMNS: tuple[str, ...] = (
    "completion_checks",
    "nodes_executed",
    "nodes_skipped",
    "tokens_emitted",
    "tokens_consumed",
)


class RunQueries(Repository):
    def create_run(
        self,
        workflow_id: str,
        inputs: Any,
        counter_value: int,
        *,
        run_id: str | None = None,
        parent: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """Create a QUEUED run; with ``run_id`` given, an existing run is returned as is.
        ``parent``: a child run's ``parent_run_id``, ``parent_node`` and ``parent_token``.

        Passing the id makes creation idempotent: a redelivered ``start_run`` (whose Celery
        task id is the run id) finds the run its first delivery made.
        """
        new_id = run_id or uuid.uuid4().hex
        with self._tx() as session:
            known = session.execute(
                sa.select(Workflow.id).where(Workflow.id == workflow_id)
            ).first()
            if known is None:
                raise NotFoundError(f"no workflow with id '{workflow_id}'")
            inserted = session.execute(
                pg_insert(Run)
                .values(
                    id=new_id,
                    workflow_id=workflow_id,
                    status=RunStatus.QUEUED.value,
                    counter_value=counter_value,
                    inputs=inputs,
                    **(parent or {}),
                )
                .on_conflict_do_nothing(index_elements=[Run.id])
                .returning(Run.id)
            ).first()
            if inserted is not None:
                session.execute(sa.insert(RunStatistics).values(run_id=new_id))
            row = session.execute(sa.select(Run.__table__).where(Run.id == new_id)).one()
            return RunRecord.from_row(row._mapping)

    def get_run(self, run_id: str) -> RunRecord:
        with self._tx() as session:
            row = session.execute(sa.select(Run.__table__).where(Run.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no run with id '{run_id}'")
        return RunRecord.from_row(row._mapping)

    def read_run(self, run_id: str) -> RunView:
        """The run with its statistics and, once it has ended, its events: what a run
        document needs from PostgreSQL, in one transaction (a waiter woken by the run's end
        reads it on the caller's latency path)."""
        stats = RunStatistics.__table__.c
        with self._tx() as session:
            row = session.execute(
                sa.select(Run.__table__, *(stats[name] for name in STAT_COLUMNS))
                .outerjoin(RunStatistics, RunStatistics.run_id == Run.id)
                .where(Run.id == run_id)
            ).first()
            if row is None:
                raise NotFoundError(f"no run with id '{run_id}'")
            run = RunRecord.from_row(row._mapping)
            events = events_of(session, run_id) if run.status in TERMINAL_RUN_STATES else None
        counts = {name: int(row._mapping[name] or 0) for name in STAT_COLUMNS}
        return RunView(run, counts, events)

    def transition_run(
        self,
        run_id: str,
        to: RunStatus,
        *,
        error: str | None = None,
        from_states: Iterable[RunStatus] = ACTIVE_RUN_STATES,
    ) -> bool:
        """Move a run to ``to`` only if it is in ``from_states``; False when it was not.

        The check and the write are one UPDATE, so two workers racing to finish a run
        cannot both win, and a run that has ended never changes again.
        """
        values: dict[str, Any] = {"status": to.value, "last_activity_at": sa.func.now()}
        if to is RunStatus.RUNNING:
            values["started_at"] = sa.func.coalesce(Run.started_at, sa.func.now())
        if to in TERMINAL_RUN_STATES:
            values["completed_at"] = sa.func.now()
        if error is not None:
            values["error"] = error
        allowed = [RunStatus(s).value for s in from_states]
        with self._tx() as session:
            changed = session.execute(
                sa.update(Run)
                .where(Run.id == run_id, Run.status.in_(allowed))
                .values(values)
                .returning(Run.id)
            ).first()
        return changed is not None

    def touch_runs(self, run_ids: Iterable[str]) -> None:
        """Record activity, so the timeout detector leaves these busy runs alone for another
        timeout period (one UPDATE)."""
        wanted = list(run_ids)
        if not wanted:
            return
        with self._tx() as session:
            session.execute(
                sa.update(Run).where(Run.id.in_(wanted)).values(last_activity_at=sa.func.now())
            )

    def find_idle_runs(self, older_than_seconds: float) -> list[str]:
        """QUEUED or RUNNING runs idle that long: the timeout detector's candidates.

        A QUEUED run that old never started (its start message was lost or refused).
        """
        cutoff = sa.func.now() - timedelta(seconds=older_than_seconds)
        with self._tx() as session:
            rows = session.execute(
                sa.select(Run.id)
                .where(
                    Run.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
                    Run.last_activity_at < cutoff,
                )
                .order_by(Run.last_activity_at)
            ).scalars()
            return list(rows)

    def list_active_runs(self) -> list[str]:
        """RUNNING, WAITING and PAUSED runs: the reconciler's round."""
        with self._tx() as session:
            rows = session.execute(sa.select(Run.id).where(Run.status.in_(_HOT))).scalars()
            return list(rows)

    def active_generations(self) -> dict[str, int]:
        """RUNNING, WAITING and PAUSED runs with the hot-state generation PostgreSQL last
        accepted."""
        with self._tx() as session:
            rows = session.execute(sa.select(Run.id, Run.hot_gen).where(Run.status.in_(_HOT))).all()
            return {run_id: gen for run_id, gen in rows}

    def list_queued_runs(self, older_than_seconds: float) -> list[str]:
        """QUEUED runs created at least that long ago: their start message may be lost."""
        cutoff = sa.func.now() - timedelta(seconds=older_than_seconds)
        with self._tx() as session:
            rows = session.execute(
                sa.select(Run.id)
                .where(Run.status == RunStatus.QUEUED.value, Run.created_at <= cutoff)
                .order_by(Run.created_at)
            ).scalars()
            return list(rows)

    def generations_of(self, run_ids: Iterable[str]) -> dict[str, tuple[RunStatus, int]]:
        """(status, hot-state generation PostgreSQL last accepted) of each of these runs
        that exists, in one query (the runs a reconciler pass found due)."""
        wanted = list(run_ids)
        if not wanted:
            return {}
        with self._tx() as session:
            rows = session.execute(
                sa.select(Run.id, Run.status, Run.hot_gen).where(Run.id.in_(wanted))
            ).all()
        return {run_id: (RunStatus(status), gen) for run_id, status, gen in rows}

    def statuses_of(self, run_ids: Iterable[str]) -> dict[str, RunStatus]:
        """The status of each of these runs that exists (a purged run is absent)."""
        wanted = list(run_ids)
        if not wanted:
            return {}
        with self._tx() as session:
            rows = session.execute(sa.select(Run.id, Run.status).where(Run.id.in_(wanted))).all()
        return {run_id: RunStatus(status) for run_id, status in rows}

    def reopen_run(self, run_id: str) -> bool:
        """FAILED -> RUNNING for a dead-letter retry; clears the error and the end time."""
        with self._tx() as session:
            changed = session.execute(
                sa.update(Run)
                .where(Run.id == run_id, Run.status == RunStatus.FAILED.value)
                .values(
                    status=RunStatus.RUNNING.value,
                    error=None,
                    completed_at=None,
                    last_activity_at=sa.func.now(),
                )
                .returning(Run.id)
            ).first()
        return changed is not None

    def delete_run(self, run_id: str) -> bool:
        """Purge a run and, by cascade, everything recorded about it."""
        with self._tx() as session:
            gone = session.execute(sa.delete(Run).where(Run.id == run_id).returning(Run.id)).first()
        return gone is not None

    def increment_stats(self, run_id: str, **deltas: int) -> None:
        """Add to counters in one atomic UPDATE, safe from any number of workers at once."""
        unknown = sorted(set(deltas) - set(STAT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown run statistics {unknown}; known: {list(STAT_COLUMNS)}")
        if not deltas:
            return
        columns = RunStatistics.__table__.c
        values: dict[str, Any] = {name: columns[name] + n for name, n in deltas.items()}
        values["updated_at"] = sa.func.now()
        with self._tx() as session:
            hit = session.execute(
                sa.update(RunStatistics)
                .where(RunStatistics.run_id == run_id)
                .values(values)
                .returning(RunStatistics.run_id)
            ).first()
        if hit is None:
            raise NotFoundError(f"no run with id '{run_id}'")

    def get_stats(self, run_id: str) -> dict[str, int]:
        columns = RunStatistics.__table__.c
        with self._tx() as session:
            row = session.execute(
                sa.select(*(columns[name] for name in STAT_COLUMNS)).where(
                    RunStatistics.run_id == run_id
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no run with id '{run_id}'")
        return {name: int(value) for name, value in row._mapping.items()}
