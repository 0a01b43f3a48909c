"""PostgreSQL off a run's critical path: one transaction to start it, one to end it, and
flushes batched across runs, on the real Redis and PostgreSQL, with every fence kept."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Harness
from wfrunner import client, fencing, lifecycle, recovery, redisnodes
from wfrunner.engine import keys
from wfrunner.errors import CounterError, NotFoundError, StoreError
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus
from wfrunner.store import prepared
from wfrunner.store.models import Run


def diamond() -> dict[str, Any]:
    def node(node_id: str) -> dict[str, Any]:
        return {"id": node_id, "type": "transform", "config": {"expression": f"['{node_id}']"}}

    return {
        "nodes": [node("A"), node("B"), node("C"), node("D")],
        "edges": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "C"},
            {"from": "B", "to": "D"},
            {"from": "C", "to": "D"},
        ],
    }


def settled(rt: Runtime) -> None:
    """The reconciler has seen this Redis server already (no restart to react to)."""
    redisnodes.look(rt.redis)


@contextmanager
def commits(rt: Runtime) -> Iterator[list[int]]:
    """Counts the PostgreSQL transactions committed inside the block."""
    seen = [0]

    def count(_: Any) -> None:
        seen[0] += 1

    engine = rt.store._engine
    sa.event.listen(engine, "commit", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "commit", count)


def submit(rt: Runtime, h: Harness) -> None:
    h.workflow_id = client.register_workflow(diamond(), rt)
    h.run_id = rt.store.create_run(h.workflow_id, {}, 1).id  # QUEUED, as submit_run does
    rt.ir(h.workflow_id)  # a worker has the compiled workflow cached


def no_flush_until_the_end(rt: Runtime) -> None:
    rt.state.flush_every = 3600.0


def test_a_start_is_one_transaction_that_records_the_entry_tokens(rt: Runtime) -> None:
    h = Harness(rt)
    submit(rt, h)
    with commits(rt) as seen:
        h._publish(lifecycle.start(rt, h.run_id, h.workflow_id, {}))
    assert seen == [1]
    run = rt.store.get_run(h.run_id)
    assert run.status is RunStatus.RUNNING and run.started_at is not None
    stored = [(e.seq, e.type) for e in rt.store.list_events(h.run_id)]
    assert stored == [(1, "run_started"), (2, "token_emitted")]
    meta = rt.state.meta(h.run_id)
    # Redis starts at the generation PostgreSQL expects, its first events counted as stored
    assert (int(meta["gen"]), int(meta["flushed"])) == (run.hot_gen, 2)
    assert [t.to_node for t in h.queue] == ["A"]
    assert h.drain()["status"] == "COMPLETED"


def test_a_start_message_without_a_queued_run_creates_it(rt: Runtime) -> None:
    """``start_run.delay(...)`` with no run recorded yet (the public API) still works."""
    workflow_id = client.register_workflow(diamond(), rt)
    tokens = lifecycle.start(rt, "direct-1", workflow_id, {"x": 1})
    run = rt.store.get_run("direct-1")
    assert run.status is RunStatus.RUNNING and run.inputs == {"x": 1}
    assert [t.to_node for t in tokens] == ["A"]
    assert rt.store.get_stats("direct-1")["nodes_executed"] == 0


def test_a_start_delivered_again_records_nothing_twice(rt: Runtime) -> None:
    h = Harness(rt)
    submit(rt, h)
    first = lifecycle.start(rt, h.run_id, h.workflow_id, {})
    again = lifecycle.start(rt, h.run_id, h.workflow_id, {})
    assert [t.key for t in again] == [t.key for t in first]  # dispatched again: deduplicated
    assert len(rt.store.list_events(h.run_id)) == 2
    h._publish(first + again)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    completed = [e.node_id for e in rt.store.list_events(h.run_id) if e.type == "node_completed"]
    assert sorted(completed) == ["A", "B", "C", "D"]  # each once


def test_a_start_that_died_before_redis_is_rebuilt_by_the_reconciler(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL committed the start, then the worker died before Redis was made live:
    the run is RUNNING with its entry tokens stored. A redelivered start leaves it to the
    reconciler, which rebuilds it from that history; it completes once."""
    settled(rt)
    h = Harness(rt)
    submit(rt, h)

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise CounterError("the worker died here")

    with monkeypatch.context() as patch:
        patch.setattr(rt.state, "start", dies)
        with pytest.raises(CounterError):
            lifecycle.start(rt, h.run_id, h.workflow_id, {})
    assert rt.store.get_run(h.run_id).status is RunStatus.RUNNING
    assert not rt.state.meta(h.run_id)
    assert lifecycle.start(rt, h.run_id, h.workflow_id, {}) == []  # never a fresh start
    h.reconcile()
    assert [t.to_node for t in h.queue] == ["A"]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    types = [e.type for e in rt.store.list_events(h.run_id)]
    assert types.count("run_started") == 1 and types.count("run_completed") == 1


def test_a_short_run_is_never_flushed_and_ends_in_one_transaction(rt: Runtime) -> None:
    h = Harness(rt)
    submit(rt, h)
    h._publish(lifecycle.start(rt, h.run_id, h.workflow_id, {}))
    no_flush_until_the_end(rt)
    outcomes = []
    while h.queue:
        token = h.queue.popleft()
        outcome = h.process(token)
        outcomes.append(outcome)
        if outcome.check_completion:
            with commits(rt) as seen:
                h.act(token, outcome)
        else:
            h.act(token, outcome)
    assert not any(o.flush for o in outcomes)
    assert seen == [1]  # the completion check and the end: one transaction
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["stats"]["completion_checks"] == h.completion_checks >= 1
    events = rt.store.list_events(h.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert rt.store.get_run(h.run_id).hot_gen == 2  # the start, then the end


def test_the_end_of_a_flushed_run_is_one_transaction_sending_only_new_events(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(rt)
    submit(rt, h)
    h._publish(lifecycle.start(rt, h.run_id, h.workflow_id, {}))
    no_flush_until_the_end(rt)
    h.deliver()  # A
    h.deliver()  # B
    assert fencing.flush(rt, h.run_id) > 0
    assert int(rt.state.meta(h.run_id)["trimmed"]) > 2  # Redis holds only the new ones
    stored = len(rt.store.list_events(h.run_id))
    with commits(rt) as seen:
        lifecycle.finish(rt, h.run_id)  # not ended yet: nothing written
        assert seen == [0]
        while h.queue:
            h.deliver()
    assert seen == [1]
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    events = rt.store.list_events(h.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) > stored
    assert "divergence" not in caplog.text
    executed = {r.node_id for r in rt.store.list_node_executions(h.run_id)}
    assert executed == {"A", "B", "C", "D"}  # A and B read back from PostgreSQL


def test_flush_requests_of_many_runs_make_one_task_and_one_transaction(rt: Runtime) -> None:
    """Runs of a shard marked due share one queued flush_runs task, which copies them in
    one transaction; a run whose Redis generation is stale is refused on its own."""
    settled(rt)
    every = range(rt.settings.background_shards)
    rt.redis.delete(*map(keys.flush_dirty_key, every), *map(keys.flush_queued_key, every))
    runs = []
    for _ in range(3):
        h = Harness(rt)
        submit(rt, h)
        h._publish(lifecycle.start(rt, h.run_id, h.workflow_id, {}))
        h.deliver()  # A: events not yet in PostgreSQL
        runs.append(h)
    queued = [rt.state.mark_dirty(h.run_id, 60) for h in runs + runs]
    shards = [rt.state.shard_of(h.run_id) for h in runs]
    first = [s if s not in shards[:i] else None for i, s in enumerate(shards)]
    assert queued == [*first, None, None, None]  # one task per shard
    stale = runs[2].run_id
    with rt.store._sessions.begin() as session:  # PostgreSQL moved on without this Redis
        session.execute(sa.update(Run).where(Run.id == stale).values(hot_gen=Run.hot_gen + 1))
    taken = [r for shard in sorted(set(shards)) for r in rt.state.take_dirty(shard, 100)]
    assert sorted(taken) == sorted(h.run_id for h in runs)
    # the task began: the next one may queue
    assert rt.state.mark_dirty(runs[0].run_id, 60) == shards[0]
    with commits(rt) as seen:
        copied = fencing.flush_many(rt, taken)
    assert seen == [1]
    assert copied > 0
    for h in runs[:2]:
        assert int(rt.state.meta(h.run_id)["gen"]) == rt.store.get_run(h.run_id).hot_gen == 2
        assert len(rt.store.list_events(h.run_id)) > 2
    assert len(rt.store.list_events(stale)) == 2  # refused: nothing written
    assert int(rt.state.meta(stale)["gen"]) == 1  # left for the reconciler to rebuild
    published = recovery.reconcile(rt)
    assert list(published) == [stale]  # rebuilt from PostgreSQL, its tokens published again
    for h in runs:
        h._publish(published.get(h.run_id, []))
        assert h.drain()["status"] == "COMPLETED"


def close_server_session(rt: Runtime) -> None:
    """Have the server close the session of the store's pooled connection (a restart, an
    administrator), as PostgreSQL does it: the client learns only at its next use."""
    with rt.store._engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    admin = sa.create_engine(rt.store.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar()
    admin.dispose()


def test_a_connection_the_server_closed_is_replaced_without_an_error(rt: Runtime) -> None:
    """No ping per transaction, yet a pooled connection the server closed (a restart, an
    administrator) is not handed out: the next transaction runs on a fresh one."""
    h = Harness(rt)
    submit(rt, h)
    close_server_session(rt)
    assert rt.store.get_run(h.run_id).status is RunStatus.QUEUED


def test_a_document_read_while_the_run_finishes_has_every_output(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ends between the document's read of its events (Redis, the run still
    RUNNING in PostgreSQL) and of its outputs: the hot state is gone by then, so the
    document is read again, from PostgreSQL, rather than showing COMPLETED nodes with a
    null output."""
    h = Harness(rt)
    h.start(diamond())
    while len(h.queue) > 1 or (h.queue and h.queue[0].to_node != "D"):
        h.deliver()
    last = h.queue.popleft()
    assert not h.process(last).dispatch  # D committed: the counter is 0, the end not recorded
    real = rt.state.payloads
    finished: list[str] = []

    def finish_first(run_id: str, refs: list[str]) -> dict[str, Any]:
        if not finished:
            finished.append(lifecycle.check_completion(rt, run_id))
        return real(run_id, refs)

    monkeypatch.setattr(rt.state, "payloads", finish_first)
    doc = client.get_run(h.run_id, rt)
    assert finished == ["completed"]
    assert doc["status"] == "COMPLETED"
    assert {n: d["output"] is not None for n, d in doc["nodes"].items()} == dict.fromkeys(
        "ABCD", True
    )


def _prepared_here(rt: Runtime) -> set[str]:
    """The statements prepared in the server session of the store's pooled connection
    (one connection: the tests drive the store from one thread)."""
    with rt.store._sessions() as session:
        rows = session.execute(sa.text("SELECT name FROM pg_prepared_statements"))
        return {name for (name,) in rows}


def test_a_runs_start_and_end_statements_are_prepared_once_per_connection(rt: Runtime) -> None:
    """sql/start_run.sql and sql/end_run.sql are PREPAREd on a connection the first time
    it runs them and EXECUTEd from then on (store/prepared.py): runs after the first
    find them prepared and end as before."""
    for _ in range(3):
        h = Harness(rt)
        h.start(diamond())
        assert h.drain()["status"] == "COMPLETED"
    assert {"wfrunner_start_run", "wfrunner_end_run"} <= _prepared_here(rt)


def test_with_prepare_off_the_statements_go_as_text(
    redis_url: str, database_url: str, redis_client: Any
) -> None:
    """WFRUNNER_PG_PREPARE=0, for a pooler that moves transactions between server
    sessions: nothing is prepared, and runs end as before."""
    from wfrunner.settings import Settings
    from wfrunner.store import migrate

    migrate.upgrade(database_url)
    rt = Runtime(Settings(redis_url=redis_url, database_url=database_url, pg_prepare=False))
    try:
        h = Harness(rt)
        h.start(diamond())
        assert h.drain()["status"] == "COMPLETED"
        assert not {n for n in _prepared_here(rt) if n.startswith("wfrunner_")}
    finally:
        rt.close()


def test_a_connection_the_server_closed_prepares_its_statements_again(rt: Runtime) -> None:
    """A prepared statement lives in one server session: the connection that replaces one
    the server closed prepares the statements anew instead of EXECUTEing ones it lacks."""
    h = Harness(rt)
    h.start(diamond())
    assert h.drain()["status"] == "COMPLETED"
    close_server_session(rt)
    h = Harness(rt)
    h.start(diamond())
    assert h.drain()["status"] == "COMPLETED"
    assert {"wfrunner_start_run", "wfrunner_end_run"} <= _prepared_here(rt)


def _backend_pid(connection: sa.Connection) -> int:
    return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_a_server_lost_during_a_runs_start_statement_is_a_store_error(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start and end statements are read from the driver's cursor, not through
    SQLAlchemy's result (store/prepared.py): a server lost while one runs is still the
    StoreError the tasks retry on, never a driver error, and the retry gets a fresh
    connection that records the run."""
    workflow_id = client.register_workflow(diamond(), rt)
    events = [("run_started", None, {"workflow_id": workflow_id})]
    rt.store.persist_start("warm", workflow_id, None, 1, events)  # prepares it on this connection
    first_row = prepared._first_row
    killed: list[int] = []

    def server_gone(connection: sa.Connection, sql: str, values: tuple[Any, ...]) -> Any:
        killed.append(_backend_pid(connection))
        admin = sa.create_engine(rt.store.database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p, 5000)"), {"p": killed[-1]})
        admin.dispose()
        return first_row(connection, sql, values)

    monkeypatch.setattr(prepared, "_first_row", server_gone)
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        rt.store.persist_start("lost", workflow_id, None, 1, events)
    monkeypatch.setattr(prepared, "_first_row", first_row)
    run, created = rt.store.persist_start("lost", workflow_id, None, 1, events)
    assert created and run.status is RunStatus.RUNNING
    with rt.store._hot_tx() as connection:
        assert _backend_pid(connection) not in killed


def test_a_start_of_an_unknown_workflow_names_it(rt: Runtime) -> None:
    """A driver error from the start statement still becomes the store's errors: the
    missing workflow is named, as when the statement went through SQLAlchemy."""
    with pytest.raises(NotFoundError, match="no workflow with id 'nope'"):
        rt.store.persist_start("r", "nope", None, 1, [])
