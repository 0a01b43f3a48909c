"""The append-only event log: the history ``wfrunner trace`` and the API replay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from wfrunner.errors import NotFoundError
from wfrunner.store.base import Repository
from wfrunner.store.models import EventLog, Run
from wfrunner.store.records import EventRecord

#: (type, node_id or None, data) — one event to append
NewEvent = tuple[str, str | None, Any]


class EventQueries(Repository):
    def append_events(self, run_id: str, events: Sequence[NewEvent]) -> list[int]:
        """Append a batch with consecutive per-run sequence numbers; returns them.

        The numbers come from one ``UPDATE runs ... RETURNING event_seq``, whose row lock
        orders concurrent appenders, so sequences never collide or leave gaps. Appending
        also counts as run activity for the timeout detector.
        """
        if not events:
            return []
        count = len(events)
        with self._tx() as session:
            last = session.execute(
                sa.update(Run)
                .where(Run.id == run_id)
                .values(event_seq=Run.event_seq + count, last_activity_at=sa.func.now())
                .returning(Run.event_seq)
            ).scalar_one_or_none()
            if last is None:
                raise NotFoundError(f"no run with id '{run_id}'")
            seqs = list(range(last - count + 1, last + 1))
            session.execute(
                sa.insert(EventLog),
                [
                    {"run_id": run_id, "seq": seq, "type": kind, "node_id": node, "data": data}
                    for seq, (kind, node, data) in zip(seqs, events, strict=True)
                ],
            )
        return seqs

    def import_events(self, run_id: str, first_seq: int, events: Sequence[NewEvent]) -> None:
        """Store events whose sequence numbers were assigned elsewhere (the run's Redis log).

        Numbers already present are kept, so flushing the same batch twice leaves one copy
        (a different event under a stored number is logged as a divergence, not written);
        ``runs.event_seq`` moves past the batch so later :meth:`append_events` calls
        continue the sequence.
        """
        from wfrunner.store.history import insert_events

        with self._tx() as session:
            insert_events(session, run_id, first_seq, events)

    def list_events(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """Events in order; ``after_seq`` and ``limit`` let a follower or a page fetch only
        what it shows."""
        with self._tx() as session:
            return events_of(session, run_id, after_seq, limit)


def events_of(
    session: Session, run_id: str, after_seq: int = 0, limit: int | None = None
) -> list[EventRecord]:
    rows = session.execute(
        sa.select(EventLog.__table__)
        .where(EventLog.run_id == run_id, EventLog.seq > after_seq)
        .order_by(EventLog.seq)
        .limit(limit)
    ).all()
    return [EventRecord.from_row(row._mapping) for row in rows]
