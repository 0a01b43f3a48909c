"""The runs list: filters, newest-first keyset pages that neither skip nor repeat a run
(ties on created_at included), and plans that read an index, not the table, when the
table is large. Real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from wfrunner.errors import QueryError
from wfrunner.states import RunStatus
from wfrunner.store import Store
from wfrunner.store.listing import runs_query

STATUSES = ["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


#: statuses in turn (the small tables), or as a real table has them: mostly COMPLETED
IN_TURN = "(:statuses)[i % 5 + 1]"
SKEWED = (
    "CASE i % 100 WHEN 0 THEN 'FAILED' WHEN 1 THEN 'CANCELLED' WHEN 2 THEN 'RUNNING' "
    "WHEN 3 THEN 'QUEUED' ELSE 'COMPLETED' END"
)


def _insert_runs(store: Store, count: int, workflows: int = 3, status: str = IN_TURN) -> None:
    """``count`` runs over ``workflows`` workflows; every third run shares its created_at
    with the next two, so pages must order ties by id."""
    with store._tx() as session:
        session.execute(
            sa.text(
                "INSERT INTO workflows (id, name, version, definition_hash, definition, ir) "
                "SELECT 'w' || i, 'flow' || i, i, 'h' || i, '{}', '{}' "
                "FROM generate_series(1, :n) i"
            ),
            {"n": workflows},
        )
        session.execute(
            sa.text(
                "INSERT INTO runs (id, workflow_id, status, counter_value, inputs, created_at, "
                "error) SELECT 'r' || lpad(i::text, 7, '0'), 'w' || (i % :w + 1), "
                f"{status}, 0, '{{}}', "
                ":t0 + ((i / 3 * 3) || ' seconds')::interval, "
                "CASE WHEN i % 5 = 3 THEN 'boom ' || i END FROM generate_series(1, :n) i"
            ),
            {"n": count, "w": workflows, "statuses": STATUSES, "t0": T0},
        )


def _expected(store: Store, where: str = "TRUE") -> list[str]:
    with store._tx() as session:
        rows = session.execute(
            sa.text(f"SELECT id FROM runs WHERE {where} ORDER BY created_at DESC, id DESC")
        ).scalars()
        return list(rows)


def _all_pages(store: Store, limit: int, **filters: object) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_runs(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        pages += 1
        seen += [run.run_id for run in page.items]
        assert len(page.items) <= limit
        cursor = page.next_cursor
        if cursor is None:
            return seen, pages


def test_pages_walk_every_run_once_newest_first(store: Store) -> None:
    _insert_runs(store, 40)
    seen, pages = _all_pages(store, limit=7)
    assert seen == _expected(store)
    assert pages == 6  # 40 runs: five full pages and one of five, no empty last page
    exact, pages = _all_pages(store, limit=8)
    assert exact == seen and pages == 5  # an exact fit ends without an empty page


def test_each_filter_and_their_combination(store: Store) -> None:
    _insert_runs(store, 60)
    by_workflow, _ = _all_pages(store, limit=4, workflow_id="w2")
    assert by_workflow == _expected(store, "workflow_id = 'w2'")
    failed, _ = _all_pages(store, limit=4, statuses=[RunStatus.FAILED])
    assert failed == _expected(store, "status = 'FAILED'")
    ended, _ = _all_pages(store, limit=4, statuses=[RunStatus.FAILED, RunStatus.COMPLETED])
    assert ended == _expected(store, "status IN ('FAILED', 'COMPLETED')")
    since = T0 + timedelta(seconds=30)
    recent, _ = _all_pages(store, limit=4, since=since)
    assert recent == _expected(store, f"created_at >= '{since.isoformat()}'")
    both, _ = _all_pages(store, limit=3, workflow_id="w1", statuses=[RunStatus.QUEUED], since=since)
    assert both == _expected(
        store, f"workflow_id = 'w1' AND status = 'QUEUED' AND created_at >= '{since.isoformat()}'"
    )
    assert both  # the combination is not vacuous


def test_summaries_carry_the_workflow_and_times(store: Store) -> None:
    _insert_runs(store, 5)
    run = store.list_runs(statuses=[RunStatus.FAILED]).items[0]
    assert (run.run_id, run.workflow_id, run.workflow_name, run.workflow_version) == (
        "r0000003",
        "w1",
        "flow1",
        1,
    )
    assert run.status is RunStatus.FAILED and run.error == "boom 3"
    assert run.created_at == T0 + timedelta(seconds=3)


def test_bad_limits_and_cursors_are_query_errors(store: Store) -> None:
    with pytest.raises(QueryError, match="limit 0 is out of range: 1 to 500"):
        store.list_runs(limit=0)
    with pytest.raises(QueryError, match="limit 501"):
        store.list_runs(limit=501)
    for cursor in ["nonsense", "W10", "WyJ4IiwgMV0", "é" * 3, "A" * 1000]:
        with pytest.raises(QueryError, match="is not a cursor a previous page returned"):
            store.list_runs(cursor=cursor)


def test_workflows_list_pages(store: Store) -> None:
    _insert_runs(store, 1, workflows=5)
    names: list[str] = []
    cursor = None
    while True:
        page = store.list_workflows(limit=2, cursor=cursor)
        names += [w.name for w in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert sorted(names) == [f"flow{i}" for i in range(1, 6)] and len(set(names)) == 5
    assert [w.version for w in store.list_workflows(name="flow4").items] == [4]


#: a large table: every filter must be answered from the index made for it
LARGE = 200_000
NEWEST = "ix_runs_created_at_id"
BY_WORKFLOW = "ix_runs_workflow_id_created_at_id"
BY_STATUS = "ix_runs_status_created_at_id"
PLANS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "all": ({}, {NEWEST}),
    "workflow": ({"workflow_id": "w7"}, {BY_WORKFLOW}),
    "status": ({"statuses": [RunStatus.FAILED]}, {BY_STATUS}),
    "statuses": ({"statuses": [RunStatus.FAILED, RunStatus.CANCELLED]}, {BY_STATUS}),
    "since": ({"since": T0 + timedelta(seconds=LARGE // 2)}, {NEWEST}),
    # few rows match both: PostgreSQL may AND two indexes' bitmaps and sort what matched
    "workflow+status": (
        {"workflow_id": "w7", "statuses": [RunStatus.RUNNING]},
        {BY_WORKFLOW, BY_STATUS, "ix_runs_status_last_activity_at"},
    ),
}
SCAN = re.compile(r"(Bitmap )?Index Scan(?: Backward)? (?:using|on) (\w+)")


def _assert_reads(plan: str, indexes: set[str], name: str) -> None:
    """The plan reads runs through the indexes given, never the whole table, and by ordered
    index scans (bitmaps only where the filter combines two indexes)."""
    assert "Seq Scan on runs" not in plan, (name, plan)
    used = {(bool(bitmap), index) for bitmap, index in SCAN.findall(plan)}
    on_runs = {(bitmap, index) for bitmap, index in used if index.startswith("ix_runs")}
    assert on_runs, (name, plan)
    assert {index for _, index in on_runs} <= indexes, (name, plan)
    if len(indexes) == 1:
        assert not any(bitmap for bitmap, _ in on_runs), (name, plan)


def _plan(connection: sa.Connection, query: Any) -> str:
    compiled = query.compile(dialect=connection.dialect)
    rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars()
    return "\n".join(rows)


def test_every_filter_reads_its_index_of_a_large_table(store: Store) -> None:
    _insert_runs(store, LARGE, workflows=20, status=SKEWED)
    with store._tx() as session:
        session.execute(sa.text("ANALYZE runs; ANALYZE workflows"))
    deep_cursor = store.list_runs(limit=50).next_cursor
    engine = sa.create_engine(store.database_url)
    try:
        with engine.connect() as connection:
            for name, (filters, indexes) in PLANS.items():
                for cursor in (None, deep_cursor):
                    plan = _plan(connection, runs_query(limit=50, cursor=cursor, **filters))
                    _assert_reads(plan, indexes, f"{name}, cursor {cursor}")
    finally:
        engine.dispose()
