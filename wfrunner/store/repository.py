"""The one door to PostgreSQL: tasks, the CLI and the API call :class:`Store`, never SQL.

Each family of queries lives in its own module; ``Store`` composes them. Every method
runs in its own short transaction and returns plain records (:mod:`.records`), so
nothing handed out is tied to a session.
"""

from __future__ import annotations

from wfrunner.store.deadletters import DeadLetterQueries
from wfrunner.store.events import EventQueries
from wfrunner.store.execution import ExecutionQueries
from wfrunner.store.families import FamilyQueries
from wfrunner.store.health import HealthQueries
from wfrunner.store.history import HistoryQueries
from wfrunner.store.listing import ListingQueries
from wfrunner.store.recovery import RecoveryQueries
from wfrunner.store.redrive import RedriveQueries
from wfrunner.store.runs import RunQueries
from wfrunner.store.schedules import ScheduleQueries
from wfrunner.store.workers import WorkerQueries
from wfrunner.store.workflows import WorkflowQueries


class Store(
    WorkflowQueries,
    RunQueries,
    EventQueries,
    ExecutionQueries,
    HistoryQueries,
    RecoveryQueries,
    RedriveQueries,
    DeadLetterQueries,
    WorkerQueries,
    ListingQueries,
    HealthQueries,
    FamilyQueries,
    ScheduleQueries,
):
    """All persistence of wfrunner, built from a database URL (``Store(url)``)."""
