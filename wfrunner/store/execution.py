"""Per-node progress of a run: attempts, join arrivals and loop iterations."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from wfrunner.states import NodeStatus
from wfrunner.store.base import Repository
from wfrunner.store.models import LoopState, NodeExecution, PendingToken
from wfrunner.store.records import NodeExecutionRecord, PendingTokenRecord

_EXECUTION_KEY = ["run_id", "node_id", "iteration", "attempt"]


class ExecutionQueries(Repository):
    def record_node_execution(
        self,
        run_id: str,
        node_id: str,
        iteration: int,
        attempt: int,
        *,
        status: NodeStatus = NodeStatus.RUNNING,
        input_ref: str | None = None,
        worker: str | None = None,
    ) -> None:
        """Note that an attempt started; a redelivered task simply restarts the same row."""
        insert = pg_insert(NodeExecution).values(
            run_id=run_id,
            node_id=node_id,
            iteration=iteration,
            attempt=attempt,
            status=status.value,
            input_ref=input_ref,
            worker=worker,
            started_at=sa.func.now(),
        )
        with self._tx() as session:
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=_EXECUTION_KEY,
                    set_={
                        "status": insert.excluded.status,
                        "input_ref": sa.func.coalesce(
                            insert.excluded.input_ref, NodeExecution.input_ref
                        ),
                        "worker": insert.excluded.worker,
                        "started_at": insert.excluded.started_at,
                    },
                )
            )

    def finish_node_execution(
        self,
        run_id: str,
        node_id: str,
        iteration: int,
        attempt: int,
        status: NodeStatus,
        *,
        output: Any = None,
        error: str | None = None,
    ) -> None:
        """Record an attempt's outcome; creates the row for nodes that never started (SKIPPED)."""
        insert = pg_insert(NodeExecution).values(
            run_id=run_id,
            node_id=node_id,
            iteration=iteration,
            attempt=attempt,
            status=status.value,
            output=output,
            error=error,
            finished_at=sa.func.now(),
        )
        with self._tx() as session:
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=_EXECUTION_KEY,
                    set_={
                        "status": insert.excluded.status,
                        "output": insert.excluded.output,
                        "error": insert.excluded.error,
                        "finished_at": insert.excluded.finished_at,
                    },
                )
            )

    def list_node_executions(self, run_id: str) -> list[NodeExecutionRecord]:
        with self._tx() as session:
            rows = session.execute(
                sa.select(NodeExecution.__table__)
                .where(NodeExecution.run_id == run_id)
                .order_by(NodeExecution.id)
            ).all()
        return [NodeExecutionRecord.from_row(row._mapping) for row in rows]

    def add_pending_token(
        self,
        run_id: str,
        node_id: str,
        from_node: str,
        iteration: int,
        payload_ref: str | None = None,
    ) -> bool:
        """Record a join arrival once; False when this token had already arrived."""
        with self._tx() as session:
            added = session.execute(
                pg_insert(PendingToken)
                .values(
                    run_id=run_id,
                    node_id=node_id,
                    from_node=from_node,
                    iteration=iteration,
                    payload_ref=payload_ref,
                )
                .on_conflict_do_nothing()
                .returning(PendingToken.run_id)
            ).first()
        return added is not None

    def list_pending_tokens(self, run_id: str, node_id: str) -> list[PendingTokenRecord]:
        with self._tx() as session:
            rows = session.execute(
                sa.select(PendingToken.__table__)
                .where(PendingToken.run_id == run_id, PendingToken.node_id == node_id)
                .order_by(PendingToken.iteration, PendingToken.created_at, PendingToken.from_node)
            ).all()
        return [PendingTokenRecord.from_row(row._mapping) for row in rows]

    def clear_pending_tokens(self, run_id: str, node_id: str | None = None) -> int:
        """Forget a join's arrivals once it fired (or all of a run's); returns how many."""
        condition = PendingToken.run_id == run_id
        if node_id is not None:
            condition = sa.and_(condition, PendingToken.node_id == node_id)
        with self._tx() as session:
            deleted = session.execute(
                sa.delete(PendingToken).where(condition).returning(PendingToken.node_id)
            ).all()
        return len(deleted)

    def set_loop_iteration(self, run_id: str, node_id: str, iteration: int) -> None:
        insert = pg_insert(LoopState).values(run_id=run_id, node_id=node_id, iteration=iteration)
        with self._tx() as session:
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["run_id", "node_id"],
                    set_={"iteration": insert.excluded.iteration, "updated_at": sa.func.now()},
                )
            )

    def list_loop_states(self, run_id: str) -> dict[str, int]:
        """Every loop node of the run with its recorded iteration."""
        with self._tx() as session:
            rows = session.execute(
                sa.select(LoopState.node_id, LoopState.iteration).where(LoopState.run_id == run_id)
            ).all()
        return {node_id: iteration for node_id, iteration in rows}

    def get_loop_iteration(self, run_id: str, node_id: str) -> int:
        """The loop's current iteration; 0 when it has not started."""
        with self._tx() as session:
            value = session.execute(
                sa.select(LoopState.iteration).where(
                    LoopState.run_id == run_id, LoopState.node_id == node_id
                )
            ).scalar_one_or_none()
        return value or 0
