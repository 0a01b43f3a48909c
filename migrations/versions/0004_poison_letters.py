"""poison letters: dead letters for messages no task can be made of

A poison message (an envelope that is not JSON, a body that is not base64, arguments that
are not a token ...) names no run anyone can trust, so its dead letter has no run, node or
token: ``kind`` tells the two apart, ``queue`` and ``raw`` keep what arrived, and
``message_key`` (its delivery tag, or a fresh id) makes moving it from Redis idempotent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the columns a node letter has and a poison letter has not
_NODE_ONLY = ("run_id", "node_id", "token_key", "token", "attempts")


def upgrade() -> None:
    op.add_column(
        "dead_letters", sa.Column("kind", sa.Text(), server_default="node", nullable=False)
    )
    op.add_column("dead_letters", sa.Column("queue", sa.Text(), nullable=True))
    op.add_column("dead_letters", sa.Column("raw", sa.Text(), nullable=True))
    op.add_column("dead_letters", sa.Column("message_key", sa.Text(), nullable=True))
    op.create_unique_constraint("uq_dead_letters_message_key", "dead_letters", ["message_key"])
    for column in _NODE_ONLY:
        op.alter_column("dead_letters", column, nullable=True)
    op.create_check_constraint(
        "ck_dead_letters_kind",
        "dead_letters",
        "(kind = 'node' AND run_id IS NOT NULL AND node_id IS NOT NULL "
        "AND token_key IS NOT NULL AND token IS NOT NULL AND attempts IS NOT NULL) "
        "OR (kind = 'poison' AND message_key IS NOT NULL AND raw IS NOT NULL)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM dead_letters WHERE kind = 'poison'")
    op.drop_constraint("ck_dead_letters_kind", "dead_letters", type_="check")
    for column in _NODE_ONLY:
        op.alter_column("dead_letters", column, nullable=False)
    op.drop_constraint("uq_dead_letters_message_key", "dead_letters", type_="unique")
    for column in ("message_key", "raw", "queue", "kind"):
        op.drop_column("dead_letters", column)
