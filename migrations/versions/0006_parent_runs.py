"""parent runs: a sub-workflow's child run names the run and node that started it

A ``subworkflow`` node runs another workflow as a child run. The child's row keeps its
parent (``parent_run_id``, ``parent_node``, and ``parent_token``: the key of the
parent's waiting token, which the child's end decides), so a child's end finds the node
waiting for it, a parent's cancellation finds its running children (the index), and both
run documents show the link.

Revision ID: 0006_parent_runs
Revises: 0005
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_parent_runs"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("parent_run_id", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("parent_node", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("parent_token", sa.Text(), nullable=True))
    op.create_foreign_key(
        "fk_runs_parent_run_id_runs", "runs", "runs", ["parent_run_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_parent_run_id", table_name="runs")
    op.drop_constraint("fk_runs_parent_run_id_runs", "runs", type_="foreignkey")
    op.drop_column("runs", "parent_token")
    op.drop_column("runs", "parent_node")
    op.drop_column("runs", "parent_run_id")
