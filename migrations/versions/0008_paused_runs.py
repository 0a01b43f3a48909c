"""paused runs: PAUSED joins the statuses a run may have

``wfrunner pause`` stops a run from starting nodes until ``wfrunner resume``; PostgreSQL
records it PAUSED meanwhile (``wfrunner runs --status PAUSED``). ``runs.status`` is text
with a check constraint, so the constraint is replaced with one that allows PAUSED.

Revision ID: 0008_paused_runs
Revises: 0007_schedules
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_paused_runs"
down_revision: str | None = "0007_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("QUEUED", "RUNNING", "WAITING", "COMPLETED", "FAILED", "CANCELLED")


#: the constraint's name as 0001 made it (the naming convention prefixed its name again)
_CHECK = "ck_runs_ck_runs_status"


def _allow(statuses: Sequence[str]) -> None:
    op.drop_constraint(op.f(_CHECK), "runs", type_="check")
    listed = ", ".join(f"'{s}'" for s in statuses)
    op.create_check_constraint(op.f(_CHECK), "runs", f"status IN ({listed})")


def upgrade() -> None:
    _allow((*_BEFORE[:3], "PAUSED", *_BEFORE[3:]))


def downgrade() -> None:
    # a run paused when the schema goes back is resumed: the old schema has no PAUSED
    op.execute("UPDATE runs SET status = 'RUNNING' WHERE status = 'PAUSED'")
    _allow(_BEFORE)
