"""PostgreSQL persistence: the only package that imports SQLAlchemy.

Use :class:`Store` for reads and writes and :mod:`wfrunner.store.migrate` for the schema.
"""

from __future__ import annotations

from wfrunner.store.deadletters import NewDeadLetter, NewPoisonLetter
from wfrunner.store.events import NewEvent
from wfrunner.store.history import EndedHistory, ExecutionRow, Fence, Progress
from wfrunner.store.records import (
    CounterSnapshot,
    DeadLetterRecord,
    EventRecord,
    NodeExecutionRecord,
    PendingTokenRecord,
    RunRecord,
    RunView,
    WorkerRecord,
    WorkflowRecord,
)
from wfrunner.store.repository import Store
from wfrunner.store.runs import STAT_COLUMNS
from wfrunner.store.workflows import canonical_json, definition_hash

__all__ = [
    "STAT_COLUMNS",
    "CounterSnapshot",
    "DeadLetterRecord",
    "EndedHistory",
    "EventRecord",
    "ExecutionRow",
    "Fence",
    "NewDeadLetter",
    "NewEvent",
    "NewPoisonLetter",
    "NodeExecutionRecord",
    "PendingTokenRecord",
    "Progress",
    "RunRecord",
    "RunView",
    "Store",
    "WorkerRecord",
    "WorkflowRecord",
    "canonical_json",
    "definition_hash",
]
