"""PostgreSQL persistence: the only package that imports SQLAlchemy.

Use :class:`Store` for reads and writes and :mod:`wfrunner.store.migrate` for the schema.
"""

from __future__ import annotations

from wfrunner.store.deadletters import NewDeadLetter, NewPoisonLetter
from wfrunner.store.events import NewEvent
from wfrunner.store.history import EndedHistory, ExecutionRow, Fence, Progress
from wfrunner.store.listing import DEFAULT_LIMIT, MAX_LIMIT
from wfrunner.store.records import (
    CounterSnapshot,
    DeadLetterRecord,
    EventRecord,
    NodeExecutionRecord,
    Page,
    PendingTokenRecord,
    RunRecord,
    RunSummary,
    RunView,
    WorkerRecord,
    WorkflowRecord,
    WorkflowSummary,
)
from wfrunner.store.repository import Store
from wfrunner.store.runs import STAT_COLUMNS
from wfrunner.store.workflows import canonical_json, definition_hash

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
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
    "Page",
    "PendingTokenRecord",
    "Progress",
    "RunRecord",
    "RunSummary",
    "RunView",
    "Store",
    "WorkerRecord",
    "WorkflowRecord",
    "WorkflowSummary",
    "canonical_json",
    "definition_hash",
]
