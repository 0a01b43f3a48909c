"""Dead letters: node messages whose attempts ran out, kept so they can be retried, and
poison messages no task could be made of, kept so someone can see what was sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from wfrunner.errors import NotFoundError
from wfrunner.store.base import Repository, Tx
from wfrunner.store.models import DeadLetter
from wfrunner.store.records import DeadLetterRecord

OPEN = "open"
RETRIED = "retried"
#: kinds of letter
NODE = "node"
POISON = "poison"


@dataclass(frozen=True)
class NewDeadLetter:
    node_id: str
    token_key: str
    token: dict[str, Any]
    error: str
    attempts: int


def insert_dead_letters(session: Tx, run_id: str, letters: Sequence[NewDeadLetter]) -> None:
    """Record letters; a token that fails again after a retry reopens its letter."""
    if not letters:
        return
    insert = pg_insert(DeadLetter).values(
        [
            {
                "run_id": run_id,
                "node_id": d.node_id,
                "token_key": d.token_key,
                "token": d.token,
                "error": d.error,
                "attempts": d.attempts,
            }
            for d in letters
        ]
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["run_id", "token_key"],
            set_={
                "error": insert.excluded.error,
                "attempts": insert.excluded.attempts,
                "status": OPEN,
                "created_at": sa.func.now(),
            },
        )
    )


@dataclass(frozen=True)
class NewPoisonLetter:
    #: the message's delivery tag, or a fresh id: moving the same letter twice stores one
    message_key: str
    queue: str
    error: str
    raw: str


class DeadLetterQueries(Repository):
    def insert_poison_letters(self, letters: Sequence[NewPoisonLetter]) -> None:
        """Record poison letters; one already recorded under its key is left alone."""
        if not letters:
            return
        rows = [
            {"kind": POISON, "message_key": d.message_key, "queue": d.queue,
             "error": d.error, "raw": d.raw}
            for d in letters
        ]  # fmt: skip
        insert = pg_insert(DeadLetter).values(rows)
        with self._tx() as session:
            session.execute(insert.on_conflict_do_nothing(index_elements=["message_key"]))

    def list_dead_letters(self, status: str | None = OPEN) -> list[DeadLetterRecord]:
        query = sa.select(DeadLetter.__table__).order_by(DeadLetter.id)
        if status is not None:
            query = query.where(DeadLetter.status == status)
        with self._tx() as session:
            rows = session.execute(query).all()
        return [DeadLetterRecord.from_row(row._mapping) for row in rows]

    def get_dead_letter(self, letter_id: int) -> DeadLetterRecord:
        with self._tx() as session:
            row = session.execute(
                sa.select(DeadLetter.__table__).where(DeadLetter.id == letter_id)
            ).first()
        if row is None:
            raise NotFoundError(f"no dead letter with id {letter_id}")
        return DeadLetterRecord.from_row(row._mapping)

    def mark_dead_letter_retried(self, letter_id: int) -> bool:
        """open -> retried, once: two concurrent retries cannot both resume the run."""
        with self._tx() as session:
            changed = session.execute(
                sa.update(DeadLetter)
                .where(DeadLetter.id == letter_id, DeadLetter.status == OPEN)
                .values(status=RETRIED, retried_at=sa.func.now())
                .returning(DeadLetter.id)
            ).first()
        return changed is not None
