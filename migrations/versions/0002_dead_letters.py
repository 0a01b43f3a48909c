"""dead letters: node messages that used up their attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "run_id",
            sa.Text(),
            sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_dead_letters_run_id_runs"),
            nullable=False,
        ),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("token_key", sa.Text(), nullable=False),
        sa.Column("token", JSONB(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("retried_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("run_id", "token_key", name="uq_dead_letters_run_id_token_key"),
    )
    op.create_index("ix_dead_letters_status_created_at", "dead_letters", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_status_created_at", table_name="dead_letters")
    op.drop_table("dead_letters")
