"""Stale hot state is detected, not trusted: Redis coming back with older data (a snapshot
restored after a crash) must not corrupt runs, on the real Redis and PostgreSQL.

A "snapshot" here is a DUMP of the run's keys, RESTOREd later: what Redis does with its
RDB/AOF files after a crash, for one run. tests/fault/test_redis_snapshot.py does the same
with a real ``redis-server`` restarted from its own files.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from typing import Any

import pytest

from tests.harness import Harness, hot_keys, redis_seen_as
from wfrunner import client, handlers, lifecycle, recovery, redisclient, redisnodes
from wfrunner.engine import keys
from wfrunner.engine.events import event
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus
from wfrunner.store import EndedHistory, ExecutionRow, Fence

CALLS: Counter[str] = Counter()


@handlers.handler("stale.count")
def count(value: Any, config: dict[str, Any]) -> Any:
    """A different output on every call: a rerun that overwrote an output would show."""
    CALLS[config["tag"]] += 1
    return {"call": CALLS[config["tag"]]}


def chain(n: int, tag: str = "") -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": f"n{i}", "type": "transform", "config": {"expression": f"{i}"}} for i in range(n)
    ]
    if tag:
        nodes[-1] = {
            "id": f"n{n - 1}",
            "type": "function",
            "config": {"function_name": "stale.count", "tag": tag},
        }
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"nodes": nodes, "edges": edges}


def settled(rt: Runtime) -> None:
    """The reconciler has seen this Redis server already (no restart to react to)."""
    redisnodes.look(rt.redis)


def snapshot(rt: Runtime, run_id: str) -> dict[str, bytes]:
    raw = redisclient.connect(rt.redis_url)
    taken = {k: raw.dump(k) for k in keys.run_keys(run_id)}
    raw.close()
    return {k: v for k, v in taken.items() if v is not None}


def restore(rt: Runtime, run_id: str, taken: dict[str, bytes]) -> None:
    """Redis comes back with the run's keys as they were when ``taken``."""
    raw = redisclient.connect(rt.redis_url)
    raw.delete(*keys.run_keys(run_id))
    for key, value in taken.items():
        raw.restore(key, 0, value)
    raw.close()


def stored_events(rt: Runtime, run_id: str) -> list[Any]:
    return rt.store.list_events(run_id)


def emitted_twice(rt: Runtime, run_id: str) -> list[str]:
    seen = Counter(
        str(e.data["token"]) for e in stored_events(rt, run_id) if e.type == "token_emitted"
    )
    return [k for k, n in seen.items() if n > 1]


def terminal_events(rt: Runtime, run_id: str) -> list[str]:
    return [e.type for e in stored_events(rt, run_id) if e.type.startswith("run_") and
            e.type in ("run_completed", "run_failed", "run_cancelled")]  # fmt: skip


def test_commit_of_a_token_not_pending_is_refused(rt: Runtime) -> None:
    """Redis came back from a snapshot taken before n1 committed, while n2's delivery (n1
    emitted it after the snapshot) was running: n2's token is not in the restored outbox,
    so it must not run, nor move the counter or the outbox."""
    settled(rt)
    h = Harness(rt)
    h.start(chain(4), {})
    h.deliver()  # n0
    to_n1 = h.queue[0]
    before = snapshot(rt, h.run_id)
    h.deliver()  # n1 commits, emits the token to n2
    restore(rt, h.run_id, before)
    to_n2 = h.queue.popleft()
    outcome = h.process(to_n2)  # n2's delivery, begun on the restored state
    assert outcome.ignored and "not pending" in outcome.ignored, outcome
    assert list(rt.state.pending(h.run_id)) == [to_n1.key]
    assert rt.state.counter(h.run_id) == 1
    # the commit itself refuses it too (a delivery that began before the restore)
    commit = rt.state.commit(
        to_n2, [], 1.0, [], nonce="late", epoch=rt.state.meta(h.run_id)["epoch"]
    )
    assert commit.state == "not_pending" and not commit.changed
    assert list(rt.state.pending(h.run_id)) == [to_n1.key]
    assert rt.state.counter(h.run_id) == 1
    h.queue.append(to_n1)  # the broker (restored too) delivers n1 again
    h.reconcile()  # (rebuilds it if a flush happened after the snapshot)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert emitted_twice(rt, h.run_id) == []
    assert terminal_events(rt, h.run_id) == ["run_completed"]


def test_flush_from_a_stale_generation_is_refused_and_the_run_rebuilt(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    settled(rt)
    h = Harness(rt)
    h.start(chain(4), {})
    entry = h.queue[0]
    before = snapshot(rt, h.run_id)
    h.deliver()  # n0
    h.deliver()  # n1
    assert recovery.flush(rt, h.run_id) > 0 or rt.store.get_run(h.run_id).hot_gen > 1
    stored = [(e.seq, e.type, e.node_id, e.data) for e in stored_events(rt, h.run_id)]
    gen = rt.store.get_run(h.run_id).hot_gen
    restore(rt, h.run_id, before)  # older than the last flush
    h.queue.clear()
    h.queue.append(entry)
    h.deliver()  # n0 again, on the stale state: a different history of the same run
    with caplog.at_level(logging.WARNING):
        assert recovery.flush(rt, h.run_id) == 0
    assert "stale hot state refused" in caplog.text
    after = [(e.seq, e.type, e.node_id, e.data) for e in stored_events(rt, h.run_id)]
    assert after == stored  # nothing of the stale state reached PostgreSQL
    assert rt.store.get_run(h.run_id).hot_gen == gen
    h.queue.clear()
    h.reconcile()  # sees the older generation: rebuilds from PostgreSQL
    assert [t.to_node for t in h.queue] == ["n2"]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert emitted_twice(rt, h.run_id) == []
    assert terminal_events(rt, h.run_id) == ["run_completed"]
    seqs = [e.seq for e in stored_events(rt, h.run_id)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_an_end_from_a_stale_generation_is_refused_and_the_run_rebuilt(rt: Runtime) -> None:
    """Redis came back from a snapshot older than the last flush, and the stale state ran
    the run to its end: PostgreSQL refuses that end; the run is rebuilt and ends once."""
    settled(rt)
    h = Harness(rt)
    h.start(chain(3), {})
    entry = h.queue[0]
    before = snapshot(rt, h.run_id)
    h.deliver()  # n0
    recovery.flush(rt, h.run_id)
    gen = rt.store.get_run(h.run_id).hot_gen
    restore(rt, h.run_id, before)  # older than the flush
    h.queue.clear()
    h.queue.append(entry)
    h.drain()  # the stale state runs n0, n1 and n2 and ends
    run = rt.store.get_run(h.run_id)
    assert (run.status, run.hot_gen) == (RunStatus.RUNNING, gen)
    assert terminal_events(rt, h.run_id) == []
    h.queue.clear()
    h.reconcile()
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert terminal_events(rt, h.run_id) == ["run_completed"]
    assert emitted_twice(rt, h.run_id) == []


def test_an_ended_run_is_immutable(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    """The snapshot holds the run before its last node ran; the run then completed. The
    restored state runs the last node again (a different output) and completes again:
    PostgreSQL keeps the first end, its event log and outputs, and the keys are dropped."""
    settled(rt)
    h = Harness(rt)
    h.start(chain(2, tag="immutable"), {})
    h.deliver()  # n0
    before = snapshot(rt, h.run_id)
    last = h.queue[0]
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["n1"]["output"] == {"call": 1}
    events = [(e.seq, e.type, e.data) for e in stored_events(rt, h.run_id)]
    restore(rt, h.run_id, before)
    h.queue.append(last)
    with caplog.at_level(logging.WARNING):
        h.drain()  # n1 runs again (call 2) and the completion check finishes again
    assert CALLS["immutable"] == 2
    assert "records it as ended" in caplog.text
    assert [(e.seq, e.type, e.data) for e in stored_events(rt, h.run_id)] == events
    assert terminal_events(rt, h.run_id) == ["run_completed"]
    outputs = {e.node_id: e.output for e in rt.store.list_node_executions(h.run_id)}
    assert outputs["n1"] == {"call": 1}
    assert hot_keys(rt, h.run_id) == []
    assert client.get_run(h.run_id, rt)["nodes"]["n1"]["output"] == {"call": 1}


def test_a_conflicting_event_is_a_logged_divergence(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(rt)
    h.start(chain(1), {})
    first = stored_events(rt, h.run_id)[0]
    with caplog.at_level(logging.WARNING):
        rt.store.import_events(h.run_id, 1, [("node_started", "x", {"t": 1})])
    assert "divergence at event 1" in caplog.text
    assert stored_events(rt, h.run_id)[0] == first
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the same event again is no divergence
        rt.store.import_events(h.run_id, 1, [(first.type, first.node_id, first.data)])
    assert "divergence" not in caplog.text


def test_an_end_conflicting_with_a_stored_event_is_a_logged_divergence(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The end's single statement keeps what PostgreSQL holds under an event number and
    reports a different event sent under it, as a flush does; the rest is written."""
    h = Harness(rt)
    h.start(chain(1), {})
    started = stored_events(rt, h.run_id)  # run_started, the entry token
    gen = rt.store.get_run(h.run_id).hot_gen
    ended = EndedHistory(
        first_seq=2,
        events=[("node_started", "x", {"t": 1}), ("run_completed", None, {"at": 2})],
        payloads={"ref-1": None},
        executions=[ExecutionRow("x", 1, 1, "COMPLETED", output=None)],
        loops={"x": 3},
        stats={"nodes_executed": 1},
        completion_checks=2,
    )
    stale = rt.store.persist_end(h.run_id, gen - 1, RunStatus.FAILED, "old", lambda _: ended)
    assert stale == (Fence.STALE, None)  # an older generation of the hot state: refused
    assert rt.store.get_run(h.run_id).status is RunStatus.RUNNING
    assert stored_events(rt, h.run_id) == started
    with caplog.at_level(logging.WARNING):
        verdict, view = rt.store.persist_end(
            h.run_id, gen, RunStatus.COMPLETED, None, lambda _: ended
        )
    assert verdict is Fence.ACCEPTED
    assert view is not None and view.run == rt.store.get_run(h.run_id)
    assert view.stats == rt.store.get_stats(h.run_id)
    assert "divergence at event 2" in caplog.text
    events = stored_events(rt, h.run_id)
    assert events[:2] == started
    assert (events[2].type, events[2].data) == ("run_completed", {"at": 2})
    run = rt.store.get_run(h.run_id)
    assert (run.status, run.hot_gen, run.event_seq) == (RunStatus.COMPLETED, gen + 1, 3)
    [execution] = rt.store.list_node_executions(h.run_id)
    assert (execution.node_id, execution.status, execution.output) == ("x", "COMPLETED", None)
    assert rt.store.load_payloads(h.run_id, ["ref-1"]) == {"ref-1": None}
    assert rt.store.get_stats(h.run_id)["completion_checks"] == 2
    assert rt.store.get_loop_iteration(h.run_id, "x") == 3
    again = rt.store.persist_end(h.run_id, gen + 1, RunStatus.FAILED, "x", lambda _: ended)
    assert again == (Fence.ENDED, None)
    assert rt.store.get_run(h.run_id).status is RunStatus.COMPLETED


def test_two_concurrent_finishes_persist_once(rt: Runtime) -> None:
    settled(rt)
    h = Harness(rt)
    h.start(chain(3), {})
    while h.queue:  # run every node, without the completion check
        h._publish(h.process(h.queue.popleft()).dispatch)
    assert rt.state.end(h.run_id, "completed", None, [event("run_completed")])
    barrier = threading.Barrier(2)
    results: list[RunStatus | None] = []

    def finish() -> None:
        barrier.wait()
        results.append(lifecycle.finish(rt, h.run_id))

    threads = [threading.Thread(target=finish) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(str, results)) == ["COMPLETED", "None"]
    assert terminal_events(rt, h.run_id) == ["run_completed"]
    executions = rt.store.list_node_executions(h.run_id)
    assert sorted(e.node_id for e in executions) == ["n0", "n1", "n2"]
    seqs = [e.seq for e in stored_events(rt, h.run_id)]
    assert seqs == list(range(1, len(seqs) + 1))


def loop(passes: int) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "transform", "config": {"expression": "{'n': 0}"}},
            {"id": "step", "type": "transform", "config": {"expression": "{'n': input.n + 1}"}},
            {
                "id": "check",
                "type": "loop",
                "config": {
                    "max_iterations": passes + 1,
                    "loop_back_to": "step",
                    "condition": "output.n < inputs.target",
                    "break_path": ["done"],
                },
            },
            {"id": "done", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "start", "to": "step"}, {"from": "step", "to": "check"}],
    }


def test_a_long_loop_keeps_a_bounded_event_list_and_its_whole_history(rt: Runtime) -> None:
    settled(rt)
    passes = 150
    h = Harness(rt)
    h.start(loop(passes), {"target": passes})
    longest = 0
    delivered = 0
    while h.queue:
        h.deliver()
        delivered += 1
        if delivered % 10 == 0:
            recovery.flush(rt, h.run_id)
        longest = max(longest, rt.redis.llen(keys.events_key(h.run_id)))
        if delivered == 200:  # mid-run: the live view still shows every event
            run = rt.store.get_run(h.run_id)
            live = client.run_events(run, rt)
            assert live[0]["type"] == "run_started"
            assert len(live) == int(rt.state.meta(h.run_id)["trimmed"]) + rt.redis.llen(
                keys.events_key(h.run_id)
            )
            assert len(live) > 5 * longest
            doc = client.get_run(h.run_id, rt)
            assert doc["nodes"]["step"]["iterations"] == 100
    assert longest < 60, longest
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["done"]["output"] == {"n": passes}
    assert doc["nodes"]["step"]["iterations"] == passes
    events = stored_events(rt, h.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) > 10 * longest
    steps = [e for e in rt.store.list_node_executions(h.run_id) if e.node_id == "step"]
    assert len(steps) == passes


def test_a_queued_run_whose_start_message_was_lost_is_started(rt: Runtime) -> None:
    """Redis restarted empty after the submit: the start_run message is gone. The
    reconciler notices the new Redis server and starts the QUEUED run itself."""
    h = Harness(rt)
    h.workflow_id = client.register_workflow(chain(2), rt)
    h.run_id = rt.store.create_run(h.workflow_id, {}, 1).id  # the message never arrives
    redis_seen_as(rt, None)  # as after an empty restart
    h.reconcile()
    assert [t.to_node for t in h.queue] == ["n0"]
    assert rt.store.get_run(h.run_id).status is RunStatus.RUNNING
    assert h.drain()["status"] == "COMPLETED"


def test_a_restored_redis_loses_the_hot_state_and_lock_of_an_ended_run(rt: Runtime) -> None:
    """The snapshot holds a run that has ended since, with a writer's lock of that time:
    the pass after the restart drops both (the lock would otherwise stay up to its TTL)."""
    settled(rt)
    h = Harness(rt)
    h.start(chain(2), {})
    before = snapshot(rt, h.run_id)
    assert h.drain()["status"] == "COMPLETED"
    restore(rt, h.run_id, before)
    rt.redis.set(keys.lock_key(h.run_id), "a-writer-of-the-past", px=30_000)
    redis_seen_as(rt, "a-server-of-the-past")
    h.queue.clear()
    h.reconcile()
    assert hot_keys(rt, h.run_id) == []
    assert h.queue == deque()
    assert terminal_events(rt, h.run_id) == ["run_completed"]


def test_the_keys_a_finish_died_before_dropping_are_swept_by_the_next_pass(
    rt: Runtime,
) -> None:
    """A worker killed between PostgreSQL's record of the end and the drop of the run's
    keys leaves them, with its lock, in a Redis that never restarted: no delivery looks at
    the run again (it has ended), so the reconciler's next pass drops them."""
    settled(rt)
    h = Harness(rt)
    h.start(chain(2), {})
    before = snapshot(rt, h.run_id)
    assert h.drain()["status"] == "COMPLETED"
    restore(rt, h.run_id, before)  # as the dead finisher left them
    rt.redis.hset(keys.meta_key(h.run_id), "state", "completed")
    rt.redis.set(keys.lock_key(h.run_id), "a-killed-finisher", px=30_000)
    h.reconcile()
    assert hot_keys(rt, h.run_id) == []
    assert h.queue == deque()
    assert terminal_events(rt, h.run_id) == ["run_completed"]


def test_a_restored_redis_is_noticed_and_its_runs_rebuilt_once(rt: Runtime) -> None:
    """The server key names another Redis process (a snapshot brought it back) and a lock
    of a writer of the past came back with it: the next pass rebuilds the run anyway (new
    epoch, outbox published), and only that pass."""
    settled(rt)
    h = Harness(rt)
    h.start(chain(3), {})
    h.deliver()  # n0
    epoch = rt.state.meta(h.run_id)["epoch"]
    redis_seen_as(rt, "a-server-of-the-past")
    rt.redis.set(keys.lock_key(h.run_id), "a-writer-of-the-past", px=30_000)
    h.queue.clear()
    h.reconcile()
    rebuilt = rt.state.meta(h.run_id)["epoch"]
    assert rebuilt != epoch
    assert [t.to_node for t in h.queue] == ["n1"]
    h.reconcile()  # the same server now: nothing to redo
    assert rt.state.meta(h.run_id)["epoch"] == rebuilt
    assert [t.to_node for t in h.queue] == ["n1"]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert emitted_twice(rt, h.run_id) == []
