"""Newest-first lists of runs and workflows, one keyset page at a time.

Each list is ordered by ``(created_at DESC, id DESC)`` and read through an index in that
order (migration 0005), so a page costs ``limit`` index entries whatever its depth and
however many rows the table holds. Several statuses are read as one limited branch per
status, merged: each branch walks the ``(status, created_at, id)`` index, where one
``status IN (...)`` scan would read every matching row to sort them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from wfrunner.errors import QueryError
from wfrunner.states import RunStatus
from wfrunner.store.base import Repository
from wfrunner.store.cursor import Keyset
from wfrunner.store.models import Run, Workflow
from wfrunner.store.records import Page, RunSummary, WorkflowSummary

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

#: a SELECT of any columns (Select is generic over its row's column types)
AnySelect = sa.Select[*tuple[Any, ...]]
Q = TypeVar("Q", bound=AnySelect)

_RUN_COLUMNS = (
    Run.id.label("run_id"),
    Run.workflow_id,
    Run.status,
    Run.error,
    Run.created_at,
    Run.started_at,
    Run.completed_at,
)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit {limit} is out of range: 1 to {MAX_LIMIT}", "limit")
    return limit


def _before(created_at: Any, key: Any, cursor: str | None) -> list[sa.ColumnElement[bool]]:
    """The keyset condition: rows strictly after the cursor's row in newest-first order."""
    if cursor is None:
        return []
    last = Keyset.decode(cursor)
    return [sa.tuple_(created_at, key) < sa.tuple_(sa.literal(last.created_at), last.id)]


def _newest_first(query: Q, created_at: Any, key: Any) -> Q:
    return query.order_by(created_at.desc(), key.desc())


def _page(rows: Sequence[Any], limit: int, make: Any) -> Page[Any]:
    """The first ``limit`` rows of ``limit + 1`` read; a cursor only when one more exists."""
    items = [make.from_row(row._mapping) for row in rows[:limit]]
    more = len(rows) > limit
    cursor = Keyset(rows[limit - 1].created_at, _key(rows[limit - 1])).encode() if more else None
    return Page(items, cursor)


def _key(row: Any) -> str:
    mapping = row._mapping
    return str(mapping["run_id"] if "run_id" in mapping else mapping["workflow_id"])


def runs_query(
    *,
    workflow_id: str | None = None,
    statuses: Sequence[RunStatus] = (),
    since: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> AnySelect:
    """The statement of one page of runs (``limit + 1`` rows: the last one says whether
    another page follows); its own function so a test can EXPLAIN it."""
    check_limit(limit)
    where = _before(Run.created_at, Run.id, cursor)
    if workflow_id is not None:
        where.append(Run.workflow_id == workflow_id)
    if since is not None:
        where.append(Run.created_at >= since)

    def branch(extra: list[sa.ColumnElement[bool]]) -> AnySelect:
        query = sa.select(*_RUN_COLUMNS).where(*where, *extra)
        return _newest_first(query, Run.created_at, Run.id).limit(limit + 1)

    wanted = sorted({RunStatus(s).value for s in statuses})
    if len(wanted) > 1:
        runs = sa.union_all(*(branch([Run.status == s]) for s in wanted)).subquery()
    else:
        runs = branch([Run.status == s for s in wanted]).subquery()
    query = sa.select(
        runs, Workflow.name.label("workflow_name"), Workflow.version.label("workflow_version")
    ).join(Workflow, Workflow.id == runs.c.workflow_id)
    return _newest_first(query, runs.c.created_at, runs.c.run_id).limit(limit + 1)


def workflows_query(
    *, name: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> AnySelect:
    """The statement of one page of workflows (``limit + 1`` rows, as :func:`runs_query`)."""
    check_limit(limit)
    where = _before(Workflow.created_at, Workflow.id, cursor)
    if name is not None:
        where.append(Workflow.name == name)
    query = sa.select(
        Workflow.id.label("workflow_id"), Workflow.name, Workflow.version, Workflow.created_at
    ).where(*where)
    return _newest_first(query, Workflow.created_at, Workflow.id).limit(limit + 1)


class ListingQueries(Repository):
    def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        statuses: Sequence[RunStatus] = (),
        since: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[RunSummary]:
        """Runs newest first, filtered by workflow, status (any of several) and creation
        time, with the workflow's name and version."""
        query = runs_query(
            workflow_id=workflow_id, statuses=statuses, since=since, limit=limit, cursor=cursor
        )
        with self._tx() as session:
            rows = session.execute(query).all()
        return _page(rows, limit, RunSummary)

    def list_workflows(
        self, *, name: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[WorkflowSummary]:
        """Registered workflows newest first (every version), optionally of one name."""
        query = workflows_query(name=name, limit=limit, cursor=cursor)
        with self._tx() as session:
            rows = session.execute(query).all()
        return _page(rows, limit, WorkflowSummary)
