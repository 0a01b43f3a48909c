"""The registry of Celery workers, kept alive by their heartbeats."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from wfrunner.store.base import Repository
from wfrunner.store.models import WorkerRegistry
from wfrunner.store.records import WorkerRecord


class WorkerQueries(Repository):
    def upsert_worker(
        self,
        worker_id: str,
        *,
        hostname: str,
        pid: int,
        queues: list[str],
        status: str = "online",
    ) -> None:
        """Register a worker at start-up; a restarted worker with the same name starts afresh."""
        insert = pg_insert(WorkerRegistry).values(
            worker_id=worker_id, hostname=hostname, pid=pid, queues=queues, status=status
        )
        with self._tx() as session:
            session.execute(
                insert.on_conflict_do_update(
                    index_elements=["worker_id"],
                    set_={
                        "hostname": insert.excluded.hostname,
                        "pid": insert.excluded.pid,
                        "queues": insert.excluded.queues,
                        "status": insert.excluded.status,
                        "started_at": sa.func.now(),
                        "last_heartbeat": sa.func.now(),
                    },
                )
            )

    def heartbeat_worker(self, worker_id: str) -> bool:
        """False when the worker is unknown (it should register again)."""
        with self._tx() as session:
            hit = session.execute(
                sa.update(WorkerRegistry)
                .where(WorkerRegistry.worker_id == worker_id)
                .values(last_heartbeat=sa.func.now())
                .returning(WorkerRegistry.worker_id)
            ).first()
        return hit is not None

    def list_workers(self) -> list[WorkerRecord]:
        with self._tx() as session:
            rows = session.execute(
                sa.select(WorkerRegistry.__table__).order_by(WorkerRegistry.worker_id)
            ).all()
        return [WorkerRecord.from_row(row._mapping) for row in rows]
