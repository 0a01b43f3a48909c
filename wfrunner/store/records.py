"""What the store hands out: plain frozen records, never ORM objects bound to a session.

Tasks, the CLI and the API can keep, serialise as JSON and compare these after the
transaction that read them is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

from wfrunner.states import NodeStatus, RunStatus

T = TypeVar("T")


class _Record:
    __slots__ = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in row.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values: times in ISO-8601, statuses by name."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in values.items()
        }


@dataclass(frozen=True, slots=True)
class WorkflowRecord(_Record):
    id: str
    name: str
    version: int
    definition_hash: str
    definition: dict[str, Any]
    ir: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord(_Record):
    id: str
    workflow_id: str
    status: RunStatus
    counter_value: int
    inputs: Any
    error: str | None
    event_seq: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime
    #: generation of the last flush accepted from Redis (see wfrunner/fencing.py)
    hot_gen: int = 0
    #: a sub-workflow's child run: the run, node and token key that started it
    parent_run_id: str | None = None
    parent_node: str | None = None
    parent_token: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RunStatus(self.status))


@dataclass(frozen=True, slots=True)
class EventRecord(_Record):
    id: int
    run_id: str
    seq: int
    type: str
    node_id: str | None
    data: Any
    created_at: datetime

    def as_event(self) -> dict[str, Any]:
        """The event as the engine wrote it (``{"type", "node", **data}``)."""
        return {"type": self.type, "node": self.node_id, **(self.data or {})}


@dataclass(frozen=True, slots=True)
class NodeExecutionRecord(_Record):
    run_id: str
    node_id: str
    iteration: int
    attempt: int
    status: NodeStatus
    input_ref: str | None
    output: Any
    error: str | None
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", NodeStatus(self.status))


@dataclass(frozen=True, slots=True)
class PendingTokenRecord(_Record):
    run_id: str
    node_id: str
    from_node: str
    iteration: int
    payload_ref: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CounterSnapshot(_Record):
    run_id: str
    counter_value: int
    applied_ops: int
    taken_at: datetime


@dataclass(frozen=True, slots=True)
class WorkerRecord(_Record):
    worker_id: str
    hostname: str
    pid: int
    queues: list[str]
    started_at: datetime
    last_heartbeat: datetime
    status: str


@dataclass(frozen=True, slots=True)
class DeadLetterRecord(_Record):
    id: int
    #: "node" (a token whose attempts ran out) or "poison" (no task could be made of it)
    kind: str
    run_id: str | None
    node_id: str | None
    token_key: str | None
    token: dict[str, Any] | None
    error: str
    attempts: int | None
    queue: str | None
    raw: str | None
    status: str
    created_at: datetime
    retried_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunView:
    """A run with what its document needs of PostgreSQL besides its outputs."""

    run: RunRecord
    stats: dict[str, int]
    #: the whole history, when it was read with the run (once the run has ended)
    events: list[EventRecord] | None


@dataclass(frozen=True, slots=True)
class RunSummary(_Record):
    """A run as a list shows it: no inputs, outputs or events, which a list never needs."""

    run_id: str
    workflow_id: str
    workflow_name: str
    workflow_version: int
    status: RunStatus
    error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RunStatus(self.status))

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON values: times in ISO-8601, the status as its name."""
        return {**_Record.to_dict(self), "status": self.status.value}


@dataclass(frozen=True, slots=True)
class WorkflowSummary(_Record):
    """A workflow as a list shows it: its definition and IR are read one at a time."""

    workflow_id: str
    name: str
    version: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a newest-first list; ``next_cursor`` reads the next one (None: the last)."""

    items: list[T]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        """``{"items": [...], "next_cursor": ...}``, each item as its ``to_dict()``."""
        return {
            "items": [i.to_dict() if isinstance(i, _Record) else i for i in self.items],
            "next_cursor": self.next_cursor,
        }
