"""The PostgreSQL schema, as typed SQLAlchemy models.

These models are the reference the migration test compares the live schema with; the
schema itself is created only by the Alembic revisions in ``migrations/``. Nothing outside
:mod:`wfrunner.store` imports this module: the repository hands out plain records.

Every table hanging off a run cascades on delete, so purging a run is one ``DELETE``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wfrunner.states import NodeStatus, RunStatus

#: deterministic constraint names, so the migration and the models agree without guessing
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = sa.DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _run_fk() -> Any:
    return sa.ForeignKey("runs.id", ondelete="CASCADE")


def _created() -> Mapped[datetime]:
    return mapped_column(Timestamp, server_default=sa.func.now())


class Workflow(Base):
    """A registered definition; a changed definition under the same name is a new version."""

    __tablename__ = "workflows"
    __table_args__ = (
        sa.UniqueConstraint("name", "version"),
        sa.Index("ix_workflows_definition_hash", "definition_hash"),
        sa.Index("ix_workflows_created_at_id", sa.desc("created_at"), sa.desc("id")),
    )

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    version: Mapped[int] = mapped_column(sa.Integer)
    definition_hash: Mapped[str] = mapped_column(sa.Text)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    ir: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()


class Run(Base):
    """One execution of a workflow; ``event_seq`` is the last event number handed out."""

    __tablename__ = "runs"
    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_([s.value for s in RunStatus]), name="status"),
        sa.Index("ix_runs_status_last_activity_at", "status", "last_activity_at"),
        # the run lists' orders (wfrunner/store/listing.py): newest first, with or without
        # a workflow or a status; the workflow's also serves its foreign key
        sa.Index("ix_runs_created_at_id", sa.desc("created_at"), sa.desc("id")),
        sa.Index(
            "ix_runs_workflow_id_created_at_id", "workflow_id", sa.desc("created_at"), sa.desc("id")
        ),
        sa.Index("ix_runs_status_created_at_id", "status", sa.desc("created_at"), sa.desc("id")),
        sa.Index("ix_runs_parent_run_id", "parent_run_id"),
    )

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(sa.Text, sa.ForeignKey("workflows.id"))
    status: Mapped[str] = mapped_column(sa.Text)
    counter_value: Mapped[int] = mapped_column(sa.Integer)
    inputs: Mapped[Any] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(sa.Text)
    event_seq: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    #: the generation of the run's hot state PostgreSQL last accepted a flush or finish from
    #: (see wfrunner/fencing.py); Redis restored from an older snapshot holds an older one
    hot_gen: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_activity_at: Mapped[datetime] = _created()
    #: a sub-workflow's child run: the run, node and waiting token that started it
    parent_run_id: Mapped[str | None] = mapped_column(
        sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE")
    )
    parent_node: Mapped[str | None] = mapped_column(sa.Text)
    parent_token: Mapped[str | None] = mapped_column(sa.Text)


class EventLog(Base):
    """Append-only history of a run; a trigger rejects UPDATE (see the migration)."""

    __tablename__ = "event_log"
    __table_args__ = (sa.UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk())
    seq: Mapped[int] = mapped_column(sa.Integer)
    type: Mapped[str] = mapped_column(sa.Text)
    node_id: Mapped[str | None] = mapped_column(sa.Text)
    data: Mapped[Any] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()


class AppliedKey(Base):
    """Durable copy of the Redis counter's op keys, so recovery never applies one twice."""

    __tablename__ = "applied_keys"

    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk(), primary_key=True)
    op_key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    applied_at: Mapped[datetime] = _created()


class RunCounterSnapshot(Base):
    """The counter value after ``applied_ops`` operations, to rebuild Redis state."""

    __tablename__ = "run_counter_snapshots"
    __table_args__ = (sa.Index("ix_run_counter_snapshots_run_id_taken_at", "run_id", "taken_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk())
    counter_value: Mapped[int] = mapped_column(sa.Integer)
    applied_ops: Mapped[int] = mapped_column(sa.Integer)
    taken_at: Mapped[datetime] = _created()


class PendingToken(Base):
    """A token that reached a join which is still waiting for its other predecessors."""

    __tablename__ = "pending_tokens"

    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk(), primary_key=True)
    node_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    from_node: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    iteration: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    payload_ref: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created()


class NodeExecution(Base):
    """One attempt of one node in one loop iteration."""

    __tablename__ = "node_executions"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "node_id", "iteration", "attempt"),
        sa.CheckConstraint(sa.column("status").in_([s.value for s in NodeStatus]), name="status"),
        sa.Index("ix_node_executions_run_id_node_id", "run_id", "node_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk())
    node_id: Mapped[str] = mapped_column(sa.Text)
    iteration: Mapped[int] = mapped_column(sa.Integer)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.Text)
    input_ref: Mapped[str | None] = mapped_column(sa.Text)
    output: Mapped[Any | None] = mapped_column(JSONB, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    worker: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class LoopState(Base):
    """The current iteration of a loop node."""

    __tablename__ = "loop_state"

    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk(), primary_key=True)
    node_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    iteration: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime] = _created()


class RunStatistics(Base):
    """Per-run counters, bumped atomically by workers."""

    __tablename__ = "run_statistics"

    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk(), primary_key=True)
    completion_checks: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    nodes_executed: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    nodes_skipped: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    tokens_emitted: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    tokens_consumed: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    updated_at: Mapped[datetime] = _created()


class WorkerRegistry(Base):
    """Celery workers seen alive; keyed by the Celery hostname (``celery@host``)."""

    __tablename__ = "worker_registry"
    __table_args__ = (sa.Index("ix_worker_registry_last_heartbeat", "last_heartbeat"),)

    worker_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.Text)
    pid: Mapped[int] = mapped_column(sa.Integer)
    queues: Mapped[list[str]] = mapped_column(JSONB)
    started_at: Mapped[datetime] = _created()
    last_heartbeat: Mapped[datetime] = _created()
    status: Mapped[str] = mapped_column(sa.Text)


class Payload(Base):
    """Content-addressed node outputs, the durable copy of what Redis holds."""

    __tablename__ = "payloads"

    run_id: Mapped[str] = mapped_column(sa.Text, _run_fk(), primary_key=True)
    ref: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    data: Mapped[Any] = mapped_column(JSONB)
    size_bytes: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = _created()


class DeadLetter(Base):
    """A message set aside: a node token that used up its attempts (``kind`` "node",
    ``wfrunner dlq retry`` resumes its run), or a poison message no task can be made of
    (``kind`` "poison": no trustworthy run, only its queue, raw text and the reason)."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "token_key"),
        sa.UniqueConstraint("message_key"),
        sa.Index("ix_dead_letters_status_created_at", "status", "created_at"),
        sa.CheckConstraint(
            "(kind = 'node' AND run_id IS NOT NULL AND node_id IS NOT NULL "
            "AND token_key IS NOT NULL AND token IS NOT NULL AND attempts IS NOT NULL) "
            "OR (kind = 'poison' AND message_key IS NOT NULL AND raw IS NOT NULL)",
            name="kind",
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text, server_default="node")
    run_id: Mapped[str | None] = mapped_column(sa.Text, _run_fk())
    node_id: Mapped[str | None] = mapped_column(sa.Text)
    token_key: Mapped[str | None] = mapped_column(sa.Text)
    token: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str] = mapped_column(sa.Text)
    attempts: Mapped[int | None] = mapped_column(sa.Integer)
    queue: Mapped[str | None] = mapped_column(sa.Text)
    raw: Mapped[str | None] = mapped_column(sa.Text)
    message_key: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text, server_default="open")
    created_at: Mapped[datetime] = _created()
    retried_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Schedule(Base):
    """The cron schedule of a workflow name (its latest version's ``schedule`` field);
    ``last_fired_at`` is the latest fire time dealt with, which the next tick counts on."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(sa.Text, sa.ForeignKey("workflows.id"))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    paused: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    last_fired_at: Mapped[datetime] = mapped_column(Timestamp)
    next_fire_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_run_id: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class ScheduleFire(Base):
    """One fire time of a schedule and what became of it: ``started`` (its run),
    ``skipped`` (overlap), ``waiting`` (queued behind a running run), ``missed`` (the
    catch-up policy passed over ``missed`` times up to this one). One row per time: a
    tick that runs twice cannot fire a time twice."""

    __tablename__ = "schedule_fires"
    __table_args__ = (
        sa.UniqueConstraint("schedule_name", "fire_time"),
        sa.Index("ix_schedule_fires_schedule_name_status", "schedule_name", "status"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    schedule_name: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("schedules.name", ondelete="CASCADE")
    )
    fire_time: Mapped[datetime] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(sa.Text)
    run_id: Mapped[str | None] = mapped_column(sa.Text)
    missed: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created()


metadata = Base.metadata
