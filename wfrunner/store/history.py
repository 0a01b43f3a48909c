"""A finished run's history, written in one transaction when the run ends.

During a run the event log, outputs and per-node progress live in Redis (the hot path
writes no SQL); :meth:`HistoryQueries.persist_history` copies them to PostgreSQL at the end,
idempotently, so a repeated finalisation leaves one copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from wfrunner.errors import NotFoundError
from wfrunner.store.base import Repository
from wfrunner.store.deadletters import NewDeadLetter, insert_dead_letters
from wfrunner.store.events import NewEvent
from wfrunner.store.models import EventLog, LoopState, NodeExecution, Payload, Run, RunStatistics
from wfrunner.store.workflows import canonical_json


@dataclass(frozen=True)
class ExecutionRow:
    node_id: str
    iteration: int
    attempt: int
    status: str
    output: Any = None
    error: str | None = None


def insert_events(
    session: Session, run_id: str, first_seq: int, events: Sequence[NewEvent]
) -> None:
    """Insert events with given sequence numbers, skipping numbers already stored."""
    if not events:
        return
    last = first_seq + len(events) - 1
    found = session.execute(
        sa.update(Run)
        .where(Run.id == run_id)
        .values(event_seq=sa.func.greatest(Run.event_seq, last))
        .returning(Run.id)
    ).first()
    if found is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    rows = [
        {"run_id": run_id, "seq": first_seq + i, "type": kind, "node_id": node, "data": data}
        for i, (kind, node, data) in enumerate(events)
    ]
    session.execute(
        pg_insert(EventLog)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[EventLog.run_id, EventLog.seq])
    )


def insert_payloads(session: Session, run_id: str, payloads: Mapping[str, Any]) -> None:
    if not payloads:
        return
    session.execute(
        pg_insert(Payload)
        .values(
            [
                {
                    "run_id": run_id,
                    "ref": ref,
                    "data": data,
                    "size_bytes": len(canonical_json(data).encode()),
                }
                for ref, data in payloads.items()
            ]
        )
        .on_conflict_do_nothing()
    )


class HistoryQueries(Repository):
    def persist_progress(
        self, run_id: str, first_seq: int, events: Sequence[NewEvent], payloads: Mapping[str, Any]
    ) -> None:
        """Copy a running run's new events and the outputs they name (one transaction)."""
        with self._tx() as session:
            insert_events(session, run_id, first_seq, events)
            insert_payloads(session, run_id, payloads)
            session.execute(
                sa.update(Run).where(Run.id == run_id).values(last_activity_at=sa.func.now())
            )

    def load_payloads(self, run_id: str) -> dict[str, Any]:
        """Every stored output of a run, by ref (to rebuild its hot state)."""
        with self._tx() as session:
            rows = session.execute(
                sa.select(Payload.ref, Payload.data).where(Payload.run_id == run_id)
            ).all()
        return {ref: data for ref, data in rows}

    def persist_history(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        payloads: Mapping[str, Any],
        executions: Sequence[ExecutionRow],
        loops: Mapping[str, int],
        stats: Mapping[str, int],
        dead_letters: Sequence[NewDeadLetter] = (),
    ) -> None:
        with self._tx() as session:
            insert_events(session, run_id, 1, events)
            insert_dead_letters(session, run_id, dead_letters)
            insert_payloads(session, run_id, payloads)
            if executions:
                insert = pg_insert(NodeExecution).values(
                    [
                        {
                            "run_id": run_id,
                            "node_id": e.node_id,
                            "iteration": e.iteration,
                            "attempt": e.attempt,
                            "status": e.status,
                            "output": e.output,
                            "error": e.error,
                            "finished_at": sa.func.now(),
                        }
                        for e in executions
                    ]
                )
                session.execute(
                    insert.on_conflict_do_update(
                        index_elements=["run_id", "node_id", "iteration", "attempt"],
                        set_={
                            "status": insert.excluded.status,
                            "output": insert.excluded.output,
                            "error": insert.excluded.error,
                        },
                    )
                )
            if loops:
                insert_loops = pg_insert(LoopState).values(
                    [{"run_id": run_id, "node_id": n, "iteration": i} for n, i in loops.items()]
                )
                session.execute(
                    insert_loops.on_conflict_do_update(
                        index_elements=["run_id", "node_id"],
                        set_={"iteration": insert_loops.excluded.iteration},
                    )
                )
            if stats:
                session.execute(
                    sa.update(RunStatistics)
                    .where(RunStatistics.run_id == run_id)
                    .values(**stats, updated_at=sa.func.now())
                )
