"""Durable copies of the hot state Redis holds, so a lost Redis can be rebuilt.

Payloads are content-addressed (``ref`` is the sha256 of the canonical JSON), so saving
one twice is a no-op; counter op keys and snapshots let recovery replay the token counter
without applying an operation twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from wfrunner.errors import PayloadError
from wfrunner.store.base import Repository
from wfrunner.store.models import AppliedKey, Payload, RunCounterSnapshot
from wfrunner.store.records import CounterSnapshot
from wfrunner.store.workflows import canonical_json


class RecoveryQueries(Repository):
    def save_payload(self, run_id: str, ref: str, data: Any) -> bool:
        """Store a payload unless it is already there; True when it was new."""
        size = len(canonical_json(data).encode("utf-8"))
        with self._tx() as session:
            added = session.execute(
                pg_insert(Payload)
                .values(run_id=run_id, ref=ref, data=data, size_bytes=size)
                .on_conflict_do_nothing()
                .returning(Payload.ref)
            ).first()
        return added is not None

    def load_payload(self, run_id: str, ref: str) -> Any:
        with self._tx() as session:
            row = session.execute(
                sa.select(Payload.data).where(Payload.run_id == run_id, Payload.ref == ref)
            ).first()
        if row is None:
            raise PayloadError(f"run '{run_id}' has no payload '{ref}'")
        return row.data

    def record_applied_key(self, run_id: str, op_key: str) -> bool:
        """Remember a counter operation; False when it had been applied already."""
        with self._tx() as session:
            added = session.execute(
                pg_insert(AppliedKey)
                .values(run_id=run_id, op_key=op_key)
                .on_conflict_do_nothing()
                .returning(AppliedKey.op_key)
            ).first()
        return added is not None

    def list_applied_keys(self, run_id: str) -> set[str]:
        with self._tx() as session:
            keys = session.execute(
                sa.select(AppliedKey.op_key).where(AppliedKey.run_id == run_id)
            ).scalars()
            return set(keys)

    def snapshot_counter(self, run_id: str, value: int, applied_ops: int) -> None:
        with self._tx() as session:
            session.execute(
                sa.insert(RunCounterSnapshot).values(
                    run_id=run_id, counter_value=value, applied_ops=applied_ops
                )
            )

    def latest_counter_snapshot(self, run_id: str) -> CounterSnapshot | None:
        with self._tx() as session:
            row = session.execute(
                sa.select(RunCounterSnapshot.__table__)
                .where(RunCounterSnapshot.run_id == run_id)
                .order_by(RunCounterSnapshot.taken_at.desc(), RunCounterSnapshot.id.desc())
                .limit(1)
            ).first()
        return None if row is None else CounterSnapshot.from_row(row._mapping)
