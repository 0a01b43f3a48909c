"""schedules: cron schedules of workflow names and the record of their fires

A definition's ``schedule`` field is kept per workflow name (the latest version's wins);
each fire time a tick of ``wfrunner.fire_schedules`` dealt with is one row of
``schedule_fires``, unique per (schedule, time), so two ticks never fire a time twice.

Revision ID: 0007_schedules
Revises: 0006_parent_runs
Create Date: 2026-12-06 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007_schedules"
down_revision: str | None = "0006_parent_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("spec", JSONB(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name="fk_schedules_workflow_id_workflows"
        ),
        sa.PrimaryKeyConstraint("name", name="pk_schedules"),
    )
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("schedule_name", sa.Text(), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("missed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_name"],
            ["schedules.name"],
            name="fk_schedule_fires_schedule_name_schedules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_fires"),
        sa.UniqueConstraint(
            "schedule_name", "fire_time", name="uq_schedule_fires_schedule_name_fire_time"
        ),
    )
    op.create_index(
        "ix_schedule_fires_schedule_name_status", "schedule_fires", ["schedule_name", "status"]
    )


def downgrade() -> None:
    op.drop_table("schedule_fires")
    op.drop_table("schedules")
