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


class HistoryQueries(Repository):
    def persist_history(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        payloads: Mapping[str, Any],
        executions: Sequence[ExecutionRow],
        loops: Mapping[str, int],
        stats: Mapping[str, int],
    ) -> None:
        with self._tx() as session:
            insert_events(session, run_id, 1, events)
            if payloads:
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
