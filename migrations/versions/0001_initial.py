"""initial schema: workflows, runs, event log and run state

Written by hand and checked against ``wfrunner.store.models`` by
``tests/integration/test_migrations.py``. CHECK constraints list the states literally:
a migration is a snapshot and must not change when ``wfrunner.states`` does.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION wfrunner_event_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_log is append-only: event % of run % cannot be updated',
        OLD.seq, OLD.run_id
        USING ERRCODE = 'raise_exception';
END
$$
"""

APPEND_ONLY_TRIGGER = """
CREATE TRIGGER event_log_append_only
BEFORE UPDATE ON event_log
FOR EACH ROW EXECUTE FUNCTION wfrunner_event_log_append_only()
"""


def _now() -> sa.TextClause:
    return sa.text("now()")


def _created(name: str = "created_at") -> sa.Column[object]:
    return sa.Column(name, TS, server_default=_now(), nullable=False)


def _run_id(table: str) -> sa.Column[object]:
    fk = sa.ForeignKey("runs.id", ondelete="CASCADE", name=f"fk_{table}_run_id_runs")
    return sa.Column("run_id", sa.Text(), fk, nullable=False)


def _create_core_tables() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition_hash", sa.Text(), nullable=False),
        sa.Column("definition", JSONB(), nullable=False),
        sa.Column("ir", JSONB(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
        sa.UniqueConstraint("name", "version", name="uq_workflows_name_version"),
    )
    op.create_index("ix_workflows_definition_hash", "workflows", ["definition_hash"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("counter_value", sa.Integer(), nullable=False),
        sa.Column("inputs", JSONB(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("event_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _created(),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("completed_at", TS, nullable=True),
        _created("last_activity_at"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name="fk_runs_workflow_id_workflows"
        ),
        sa.CheckConstraint(
            "status IN ('QUEUED', 'RUNNING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELLED')",
            name="ck_runs_status",
        ),
    )
    op.create_index("ix_runs_status_last_activity_at", "runs", ["status", "last_activity_at"])
    op.create_index("ix_runs_workflow_id", "runs", ["workflow_id"])

    op.create_table(
        "event_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        _run_id("event_log"),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("data", JSONB(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="pk_event_log"),
        sa.UniqueConstraint("run_id", "seq", name="uq_event_log_run_id_seq"),
    )
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(APPEND_ONLY_TRIGGER)


def _create_counter_tables() -> None:
    op.create_table(
        "applied_keys",
        _run_id("applied_keys"),
        sa.Column("op_key", sa.Text(), nullable=False),
        _created("applied_at"),
        sa.PrimaryKeyConstraint("run_id", "op_key", name="pk_applied_keys"),
    )
    op.create_table(
        "run_counter_snapshots",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        _run_id("run_counter_snapshots"),
        sa.Column("counter_value", sa.Integer(), nullable=False),
        sa.Column("applied_ops", sa.Integer(), nullable=False),
        _created("taken_at"),
        sa.PrimaryKeyConstraint("id", name="pk_run_counter_snapshots"),
    )
    op.create_index(
        "ix_run_counter_snapshots_run_id_taken_at",
        "run_counter_snapshots",
        ["run_id", "taken_at"],
    )
    op.create_table(
        "pending_tokens",
        _run_id("pending_tokens"),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("from_node", sa.Text(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("payload_ref", sa.Text(), nullable=True),
        _created(),
        sa.PrimaryKeyConstraint(
            "run_id", "node_id", "from_node", "iteration", name="pk_pending_tokens"
        ),
    )


def _create_execution_tables() -> None:
    op.create_table(
        "node_executions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        _run_id("node_executions"),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("input_ref", sa.Text(), nullable=True),
        sa.Column("output", JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_node_executions"),
        sa.UniqueConstraint(
            "run_id",
            "node_id",
            "iteration",
            "attempt",
            name="uq_node_executions_run_id_node_id_iteration_attempt",
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'RUNNING', 'WAITING', 'COMPLETED', 'FAILED', 'SKIPPED')",
            name="ck_node_executions_status",
        ),
    )
    op.create_index("ix_node_executions_run_id_node_id", "node_executions", ["run_id", "node_id"])
    op.create_table(
        "loop_state",
        _run_id("loop_state"),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        _created("updated_at"),
        sa.PrimaryKeyConstraint("run_id", "node_id", name="pk_loop_state"),
    )
    zero = sa.text("0")
    op.create_table(
        "run_statistics",
        _run_id("run_statistics"),
        sa.Column("completion_checks", sa.Integer(), server_default=zero, nullable=False),
        sa.Column("nodes_executed", sa.Integer(), server_default=zero, nullable=False),
        sa.Column("nodes_skipped", sa.Integer(), server_default=zero, nullable=False),
        sa.Column("tokens_emitted", sa.Integer(), server_default=zero, nullable=False),
        sa.Column("tokens_consumed", sa.Integer(), server_default=zero, nullable=False),
        _created("updated_at"),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_statistics"),
    )


def _create_infrastructure_tables() -> None:
    op.create_table(
        "worker_registry",
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", JSONB(), nullable=False),
        _created("started_at"),
        _created("last_heartbeat"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name="pk_worker_registry"),
    )
    op.create_index("ix_worker_registry_last_heartbeat", "worker_registry", ["last_heartbeat"])
    op.create_table(
        "payloads",
        _run_id("payloads"),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("run_id", "ref", name="pk_payloads"),
    )


def upgrade() -> None:
    _create_core_tables()
    _create_counter_tables()
    _create_execution_tables()
    _create_infrastructure_tables()


def downgrade() -> None:
    for table in (
        "payloads",
        "worker_registry",
        "run_statistics",
        "loop_state",
        "node_executions",
        "pending_tokens",
        "run_counter_snapshots",
        "applied_keys",
    ):
        op.drop_table(table)
    op.execute("DROP TRIGGER IF EXISTS event_log_append_only ON event_log")
    op.drop_table("event_log")
    op.execute("DROP FUNCTION IF EXISTS wfrunner_event_log_append_only()")
    op.drop_table("runs")
    op.drop_table("workflows")
