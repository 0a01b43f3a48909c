"""Reopening an ended run for a rerun (``wfrunner rerun``), in one transaction."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from wfrunner.states import RunStatus
from wfrunner.store.base import Repository
from wfrunner.store.deadletters import OPEN, RETRIED
from wfrunner.store.events import NewEvent
from wfrunner.store.history import insert_events
from wfrunner.store.models import DeadLetter, Run
from wfrunner.store.records import RunRecord


class RedriveQueries(Repository):
    def reopen_for_rerun(
        self, run_id: str, from_states: Iterable[RunStatus], evt: NewEvent
    ) -> RunRecord | None:
        """Make an ended run RUNNING again under a new hot-state generation, with ``evt``
        (its ``run_redriven``) appended to its history and its open dead letters marked
        retried, all at once; None when the run is not in ``from_states`` (two reruns
        racing: one wins). The end time and error are cleared; the history stays."""
        allowed = [RunStatus(s).value for s in from_states]
        with self._tx() as session:
            row = session.execute(
                sa.update(Run)
                .where(Run.id == run_id, Run.status.in_(allowed))
                .values(
                    status=RunStatus.RUNNING.value,
                    error=None,
                    completed_at=None,
                    last_activity_at=sa.func.now(),
                    event_seq=Run.event_seq + 1,
                    # whatever still holds the ended run's generation is stale from now on
                    hot_gen=Run.hot_gen + 1,
                )
                .returning(*Run.__table__.c)
            ).first()
            if row is None:
                return None
            run = RunRecord.from_row(row._mapping)
            insert_events(session, run_id, run.event_seq, [evt], counted=True)
            session.execute(
                sa.update(DeadLetter)
                .where(DeadLetter.run_id == run_id, DeadLetter.status == OPEN)
                .values(status=RETRIED, retried_at=sa.func.now())
            )
        return run
