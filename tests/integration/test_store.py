"""Every Store method against a real, freshly migrated PostgreSQL database."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from wfrunner import client
from wfrunner import runtime as runtime_module
from wfrunner.errors import NotFoundError, PayloadError, StoreError
from wfrunner.runtime import Runtime
from wfrunner.states import NodeStatus, RunStatus
from wfrunner.store import Store, definition_hash

DEFINITION = {"name": "demo", "nodes": [{"id": "a", "type": "function"}], "edges": []}
IR = {"nodes": {"a": {"id": "a"}}, "entry_nodes": ["a"]}


@pytest.fixture()
def run_id(store: Store) -> str:
    workflow = store.register_workflow("demo", DEFINITION, IR)
    return store.create_run(workflow.id, {"x": 1}, counter_value=1).id


# --- workflows ---------------------------------------------------------------------------


def test_register_workflow_is_idempotent_per_definition(store: Store) -> None:
    first = store.register_workflow("demo", DEFINITION, IR)
    reordered = dict(reversed(list(DEFINITION.items())))
    again = store.register_workflow("demo", reordered, IR)
    assert again == first
    assert first.version == 1
    assert len(first.id) == 32
    assert first.definition_hash == definition_hash(DEFINITION)
    assert first.definition == DEFINITION and first.ir == IR
    assert first.created_at.tzinfo is not None


def test_changed_definition_gets_next_version(store: Store) -> None:
    first = store.register_workflow("demo", DEFINITION, IR)
    changed = {**DEFINITION, "metadata": {"v": 2}}
    second = store.register_workflow("demo", changed, IR)
    assert (second.version, second.name) == (2, "demo")
    assert second.id != first.id
    assert store.register_workflow("demo", DEFINITION, IR) == first
    assert store.register_workflow("other", DEFINITION, IR).version == 1
    assert store.get_workflow(second.id) == second


def test_concurrent_registration_picks_distinct_versions(store: Store) -> None:
    results: list[int] = []

    def register(i: int) -> None:
        results.append(store.register_workflow("race", {"i": i}, IR).version)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 2, 3, 4, 5, 6]


def test_get_workflow_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no workflow with id 'nope'"):
        store.get_workflow("nope")


# --- runs --------------------------------------------------------------------------------


def test_create_and_get_run(store: Store) -> None:
    workflow = store.register_workflow("demo", DEFINITION, IR)
    run = store.create_run(workflow.id, {"x": [1, 2]}, counter_value=2)
    assert run.status is RunStatus.QUEUED
    assert (run.workflow_id, run.inputs, run.counter_value, run.event_seq) == (
        workflow.id,
        {"x": [1, 2]},
        2,
        0,
    )
    assert run.started_at is None and run.completed_at is None and run.error is None
    assert store.get_run(run.id) == run
    assert store.get_stats(run.id) == dict.fromkeys(
        [
            "completion_checks",
            "nodes_executed",
            "nodes_skipped",
            "tokens_emitted",
            "tokens_consumed",
        ],
        0,
    )


def test_run_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no run with id 'nope'"):
        store.get_run("nope")
    with pytest.raises(NotFoundError, match="no workflow with id 'nope'"):
        store.create_run("nope", {}, counter_value=1)


def test_guarded_transitions(store: Store, run_id: str) -> None:
    assert store.transition_run(run_id, RunStatus.RUNNING)
    started = store.get_run(run_id)
    assert started.status is RunStatus.RUNNING and started.started_at is not None
    assert store.transition_run(run_id, RunStatus.WAITING)
    assert store.transition_run(run_id, RunStatus.RUNNING)
    assert store.get_run(run_id).started_at == started.started_at
    assert store.transition_run(run_id, RunStatus.COMPLETED)
    done = store.get_run(run_id)
    assert done.status is RunStatus.COMPLETED and done.completed_at is not None

    assert not store.transition_run(run_id, RunStatus.FAILED, error="too late")
    after = store.get_run(run_id)
    assert after.status is RunStatus.COMPLETED and after.error is None
    assert not store.transition_run("nope", RunStatus.RUNNING)


def test_transition_records_error_and_respects_from_states(store: Store, run_id: str) -> None:
    assert not store.transition_run(run_id, RunStatus.FAILED, from_states={RunStatus.RUNNING})
    assert store.transition_run(run_id, RunStatus.FAILED, error="node 'a' failed")
    failed = store.get_run(run_id)
    assert (failed.status, failed.error) == (RunStatus.FAILED, "node 'a' failed")


def test_only_one_racing_transition_wins(store: Store, run_id: str) -> None:
    store.transition_run(run_id, RunStatus.RUNNING)
    wins: list[bool] = []
    targets = [RunStatus.COMPLETED, RunStatus.FAILED] * 4
    threads = [
        threading.Thread(target=lambda t=t: wins.append(store.transition_run(run_id, t)))
        for t in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


def test_idle_runs_and_touch(store: Store, run_id: str) -> None:
    time.sleep(0.05)
    assert store.find_idle_runs(0.01) == [run_id]  # QUEUED and never started
    store.transition_run(run_id, RunStatus.RUNNING)
    assert store.find_idle_runs(0.5) == []
    time.sleep(0.05)
    assert store.find_idle_runs(0.01) == [run_id]
    assert store.find_idle_runs(3600) == []
    store.transition_run(run_id, RunStatus.COMPLETED)
    assert store.find_idle_runs(0.01) == []
    before = store.get_run(run_id).last_activity_at
    store.touch_runs([run_id])
    assert store.get_run(run_id).last_activity_at > before


def test_delete_run_cascades(store: Store, run_id: str) -> None:
    store.append_events(run_id, [("run.started", None, {})])
    store.add_pending_token(run_id, "j", "a", 1)
    assert store.delete_run(run_id)
    assert not store.delete_run(run_id)
    assert store.list_events(run_id) == []
    assert store.list_pending_tokens(run_id, "j") == []


# --- statistics --------------------------------------------------------------------------


def test_increment_stats(store: Store, run_id: str) -> None:
    store.increment_stats(run_id, completion_checks=1, tokens_emitted=3)
    store.increment_stats(run_id, completion_checks=2)
    threads = [
        threading.Thread(target=store.increment_stats, args=(run_id,), kwargs={"nodes_executed": 1})
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = store.get_stats(run_id)
    assert stats["completion_checks"] == 3
    assert stats["tokens_emitted"] == 3
    assert stats["nodes_executed"] == 10
    with pytest.raises(ValueError, match="bogus"):
        store.increment_stats(run_id, bogus=1)
    with pytest.raises(NotFoundError, match="no run with id 'nope'"):
        store.increment_stats("nope", completion_checks=1)
    with pytest.raises(NotFoundError):
        store.get_stats("nope")


# --- events ------------------------------------------------------------------------------


def test_append_and_list_events(store: Store, run_id: str) -> None:
    assert store.append_events(run_id, []) == []
    assert store.append_events(run_id, [("run.started", None, {"inputs": {}})]) == [1]
    seqs = store.append_events(
        run_id, [("node.started", "a", {}), ("node.completed", "a", {"output": [1]})]
    )
    assert seqs == [2, 3]
    events = store.list_events(run_id)
    assert [(e.seq, e.type, e.node_id) for e in events] == [
        (1, "run.started", None),
        (2, "node.started", "a"),
        (3, "node.completed", "a"),
    ]
    assert events[2].data == {"output": [1]}
    assert [e.seq for e in store.list_events(run_id, after_seq=2)] == [3]
    assert store.get_run(run_id).event_seq == 3
    with pytest.raises(NotFoundError, match="no run with id 'nope'"):
        store.append_events("nope", [("x", None, {})])


def test_concurrent_appends_get_consecutive_unique_seqs(store: Store, run_id: str) -> None:
    handed_out: list[int] = []
    lock = threading.Lock()

    def append(worker: int) -> None:
        for i in range(50):
            seqs = store.append_events(run_id, [("tick", f"n{worker}", {"i": i})])
            with lock:
                handed_out.extend(seqs)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(handed_out) == list(range(1, 401))
    assert [e.seq for e in store.list_events(run_id)] == list(range(1, 401))


def test_event_log_is_append_only(store: Store, run_id: str) -> None:
    store.append_events(run_id, [("run.started", None, {})])
    engine = sa.create_engine(store.database_url)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text("UPDATE event_log SET data = '{}'::jsonb"))
    engine.dispose()


# --- node executions, joins, loops -------------------------------------------------------


def test_node_executions_upsert(store: Store, run_id: str) -> None:
    store.record_node_execution(run_id, "a", 1, 1, input_ref="ref-in", worker="celery@w1")
    store.record_node_execution(run_id, "a", 1, 1, worker="celery@w2")  # redelivered
    store.finish_node_execution(run_id, "a", 1, 1, NodeStatus.COMPLETED, output={"y": 2})
    store.finish_node_execution(run_id, "b", 1, 1, NodeStatus.SKIPPED)
    store.record_node_execution(run_id, "a", 2, 1)
    store.finish_node_execution(run_id, "a", 2, 1, NodeStatus.FAILED, error="boom")
    executions = store.list_node_executions(run_id)
    assert [(e.node_id, e.iteration, e.status) for e in executions] == [
        ("a", 1, NodeStatus.COMPLETED),
        ("b", 1, NodeStatus.SKIPPED),
        ("a", 2, NodeStatus.FAILED),
    ]
    first = executions[0]
    assert (first.input_ref, first.worker, first.output) == ("ref-in", "celery@w2", {"y": 2})
    assert first.started_at is not None and first.finished_at is not None
    assert executions[1].started_at is None
    assert executions[2].error == "boom"


def test_pending_tokens(store: Store, run_id: str) -> None:
    assert store.add_pending_token(run_id, "join", "a", 1, payload_ref="r1")
    assert not store.add_pending_token(run_id, "join", "a", 1, payload_ref="r1")
    assert store.add_pending_token(run_id, "join", "b", 1)
    assert store.add_pending_token(run_id, "join", "a", 2)
    assert store.add_pending_token(run_id, "other", "c", 1)
    tokens = store.list_pending_tokens(run_id, "join")
    assert [(t.from_node, t.iteration, t.payload_ref) for t in tokens] == [
        ("a", 1, "r1"),
        ("b", 1, None),
        ("a", 2, None),
    ]
    assert store.clear_pending_tokens(run_id, "join") == 3
    assert store.list_pending_tokens(run_id, "join") == []
    assert store.clear_pending_tokens(run_id) == 1
    with pytest.raises(NotFoundError, match="no run with id 'nope'"):
        store.add_pending_token("nope", "join", "a", 1)


def test_loop_iterations(store: Store, run_id: str) -> None:
    assert store.get_loop_iteration(run_id, "loop") == 0
    store.set_loop_iteration(run_id, "loop", 1)
    store.set_loop_iteration(run_id, "loop", 2)
    assert store.get_loop_iteration(run_id, "loop") == 2


# --- recovery copies ---------------------------------------------------------------------


def test_payloads(store: Store, run_id: str) -> None:
    assert store.save_payload(run_id, "abc", {"big": [1, 2, 3]})
    assert not store.save_payload(run_id, "abc", {"big": [1, 2, 3]})
    assert store.load_payload(run_id, "abc") == {"big": [1, 2, 3]}
    assert store.save_payload(run_id, "null", None)
    assert store.load_payload(run_id, "null") is None
    with pytest.raises(PayloadError, match="has no payload 'missing'"):
        store.load_payload(run_id, "missing")


def test_applied_keys_and_snapshots(store: Store, run_id: str) -> None:
    assert store.record_applied_key(run_id, "op-1")
    assert not store.record_applied_key(run_id, "op-1")
    assert store.record_applied_key(run_id, "op-2")
    assert store.list_applied_keys(run_id) == {"op-1", "op-2"}
    assert store.latest_counter_snapshot(run_id) is None
    store.snapshot_counter(run_id, value=3, applied_ops=2)
    store.snapshot_counter(run_id, value=1, applied_ops=5)
    latest = store.latest_counter_snapshot(run_id)
    assert latest is not None
    assert (latest.counter_value, latest.applied_ops) == (1, 5)


# --- workers -----------------------------------------------------------------------------


def test_worker_registry(store: Store) -> None:
    store.upsert_worker("celery@b", hostname="b", pid=2, queues=["wfrunner.tasks"])
    store.upsert_worker(
        "celery@a", hostname="a", pid=1, queues=["wfrunner.tasks", "wfrunner.completion"]
    )
    before = store.list_workers()
    assert [w.worker_id for w in before] == ["celery@a", "celery@b"]
    assert before[0].queues == ["wfrunner.tasks", "wfrunner.completion"]
    assert before[0].status == "online"
    time.sleep(0.01)
    assert store.heartbeat_worker("celery@a")
    assert not store.heartbeat_worker("celery@zzz")
    assert store.list_workers()[0].last_heartbeat > before[0].last_heartbeat
    store.upsert_worker("celery@a", hostname="a", pid=9, queues=[], status="offline")
    restarted = store.list_workers()[0]
    assert (restarted.pid, restarted.status, restarted.queues) == (9, "offline", [])


# --- errors ------------------------------------------------------------------------------


def test_unmigrated_database_says_to_upgrade(database_url: str) -> None:
    store = Store(database_url)
    with pytest.raises(StoreError, match="wfrunner db upgrade"):
        store.get_run("x")
    store.close()


def test_unreachable_database_names_host_without_password() -> None:
    store = Store("postgresql+psycopg2://postgres:hunter2@127.0.0.1:1/wfdb")
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/wfdb") as caught:
        store.get_run("x")
    assert "hunter2" not in str(caught.value)
    store.close()


def test_a_process_keeps_only_the_most_recently_used_compiled_workflows(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that sees many workflows over its life keeps a bounded number compiled:
    the least recently used is dropped, and compiled again from PostgreSQL when needed."""
    monkeypatch.setattr(runtime_module, "IR_CACHE_SIZE", 2)
    ids = [
        client.register_workflow(
            {
                "metadata": {"name": f"cached-{i}"},
                "nodes": [{"id": f"n{i}", "type": "transform", "config": {"expression": "1"}}],
                "edges": [],
            },
            rt,
        )
        for i in range(3)
    ]
    first = rt.ir(ids[0])
    rt.ir(ids[1])
    assert rt.ir(ids[0]) is first  # used again: now the most recent
    rt.ir(ids[2])
    assert list(rt._irs) == [ids[0], ids[2]]  # ids[1] went first
    again = rt.ir(ids[1])
    assert list(again.nodes) == ["n1"]
    assert ids[0] not in rt._irs and len(rt._irs) == 2
