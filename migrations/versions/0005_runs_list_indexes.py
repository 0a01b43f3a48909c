"""runs list indexes: newest-first lists of runs and workflows read through an index

``wfrunner runs`` and ``GET /runs`` page newest first by ``(created_at, id)``, optionally
for one workflow or some statuses; each of those orders gets its index, so a page reads
``limit`` entries however many runs there are. ``(workflow_id, created_at, id)`` replaces
the plain ``workflow_id`` index (it serves the foreign key just as well), which would
otherwise cost every run's insert an extra index write for nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEWEST_FIRST = (sa.text("created_at DESC"), sa.text("id DESC"))


def upgrade() -> None:
    op.create_index("ix_runs_created_at_id", "runs", [*_NEWEST_FIRST])
    op.create_index("ix_runs_workflow_id_created_at_id", "runs", ["workflow_id", *_NEWEST_FIRST])
    op.create_index("ix_runs_status_created_at_id", "runs", ["status", *_NEWEST_FIRST])
    op.drop_index("ix_runs_workflow_id", table_name="runs")
    op.create_index("ix_workflows_created_at_id", "workflows", [*_NEWEST_FIRST])


def downgrade() -> None:
    op.drop_index("ix_workflows_created_at_id", table_name="workflows")
    op.create_index("ix_runs_workflow_id", "runs", ["workflow_id"])
    op.drop_index("ix_runs_status_created_at_id", table_name="runs")
    op.drop_index("ix_runs_workflow_id_created_at_id", table_name="runs")
    op.drop_index("ix_runs_created_at_id", table_name="runs")
