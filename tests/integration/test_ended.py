"""Waiting for a run's end: the end is announced over Redis pub/sub once PostgreSQL holds
it (wfrunner/ended.py), and wait_for_run wakes on the announcement, not on its polling
interval; a lost announcement only costs one interval."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.harness import Harness
from wfrunner import client, ended, lifecycle
from wfrunner.engine import keys
from wfrunner.engine.events import event
from wfrunner.engine.runstate import WAITS_FOR_NOTHING, RunState
from wfrunner.runtime import Runtime

#: a polling interval no test waits for: a waiter that returns woke on the announcement
NEVER = 3600.0


def chain() -> dict[str, Any]:
    def node(node_id: str) -> dict[str, Any]:
        return {"id": node_id, "type": "transform", "config": {"expression": f"['{node_id}']"}}

    return {"nodes": [node("A"), node("B")], "edges": [{"from": "A", "to": "B"}]}


class Waiter(threading.Thread):
    """wait_for_run in a thread, counting the run reads it makes."""

    def __init__(self, rt: Runtime, run_id: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.rt, self.run_id, self.interval = rt, run_id, interval
        self.doc: dict[str, Any] | None = None

    def run(self) -> None:
        self.doc = client.wait_for_run(self.run_id, timeout=60, interval=self.interval, rt=self.rt)


def subscribed(rt: Runtime, run_id: str) -> None:
    """Return once someone listens on the run's end channel (as the finisher counts them:
    on a Redis Cluster, on the master of the run's slot)."""
    for _ in range(500):
        if type(rt.state).ended_state(rt.state, run_id).waiters:  # (even when patched)
            return
        time.sleep(0.01)
    pytest.fail("the waiter never subscribed to the run's end channel")


def counting_reads(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that read a run from PostgreSQL, one per read (its status,
    or all a document needs of it)."""
    reads: list[str] = []

    def counted(real: Any) -> Any:
        def read(run_id: str) -> Any:
            reads.append(threading.current_thread().name)
            return real(run_id)

        return read

    monkeypatch.setattr(rt.store, "get_run", counted(rt.store.get_run))
    monkeypatch.setattr(rt.store, "read_run", counted(rt.store.read_run))
    return reads


def waited(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Waiter, list[str]]:
    """A run waited for by a Waiter thread until its last delivery finished it; (its id,
    the waiter, the run reads made)."""
    h = Harness(rt)
    run_id = h.start(chain())
    reads = counting_reads(rt, monkeypatch)
    waiter = Waiter(rt, run_id, interval=NEVER)
    waiter.start()
    subscribed(rt, run_id)
    h.drain()  # the last delivery finishes the run
    waiter.join(30)
    assert not waiter.is_alive(), "wait_for_run did not wake on the run's end"
    return run_id, waiter, reads


def test_wait_for_run_wakes_on_the_announced_end(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, waiter, reads = waited(rt, monkeypatch)
    assert waiter.doc is not None and waiter.doc["status"] == "COMPLETED"
    # the status before waiting, and no more: the announcement carried the document
    assert reads.count(waiter.name) == 1
    assert waiter.doc == client.get_run(run_id, rt)
    assert waiter.doc["nodes"]["B"]["output"] == ["B"]


def test_an_end_nobody_waits_for_announces_its_status_alone(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The document is made only for a run someone waits for."""
    h = Harness(rt)
    run_id = h.start(chain())
    while h.queue:  # run every node, without the completion check
        h._publish(h.process(h.queue.popleft()).dispatch)
    assert rt.state.end(run_id, "completed", None, [event("run_completed")])
    listener = rt.redis.pubsub(ignore_subscribe_messages=True)
    original = rt.state.ended_state

    def unwatched(run: str, lock: Any = None, end: Any = None) -> Any:
        state = original(run, lock=lock, end=end)  # nobody listens yet: the count it reads is 0
        listener.subscribe(keys.ended_channel(run))
        subscribed(rt, run)
        return state

    monkeypatch.setattr(rt.state, "ended_state", unwatched)
    try:
        assert lifecycle.finish(rt, run_id) is not None
        deadline = time.monotonic() + 10
        message = None
        while message is None and time.monotonic() < deadline:
            message = listener.get_message(timeout=1)
        assert message is not None and message["data"] == "COMPLETED"
    finally:
        listener.close()


def test_a_status_alone_makes_the_waiter_read_the_document(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ended.announcement
    monkeypatch.setattr(
        ended, "announcement", lambda run_id, status, document=None: real(run_id, status)
    )
    run_id, waiter, reads = waited(rt, monkeypatch)
    assert waiter.doc == client.get_run(run_id, rt)
    # the status before waiting, then, woken, the document's own read (no status re-read)
    assert reads.count(waiter.name) == 2


def test_a_lost_announcement_is_made_up_for_by_the_safety_poll(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ended, "announcement", lambda *args: None)
    h = Harness(rt)
    run_id = h.start(chain())
    waiter = Waiter(rt, run_id, interval=0.2)
    waiter.start()
    subscribed(rt, run_id)
    h.drain()
    waiter.join(30)
    assert not waiter.is_alive()
    assert waiter.doc is not None and waiter.doc["status"] == "COMPLETED"


def test_failing_a_run_that_never_started_announces_it(rt: Runtime) -> None:
    workflow_id = client.register_workflow(chain(), rt)
    run_id = rt.store.create_run(workflow_id, None, 1).id
    listener = rt.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(keys.ended_channel(run_id))
    try:
        assert lifecycle.fail(rt, run_id, "cancelled by the test", kind="cancelled")
        deadline = time.monotonic() + 10
        message = None
        while message is None and time.monotonic() < deadline:
            message = listener.get_message(timeout=1)
        assert message is not None and message["data"] == "CANCELLED"
        # an end that was already recorded is not announced twice
        assert not lifecycle.fail(rt, run_id, "again", kind="cancelled")
        assert listener.get_message(timeout=0.5) is None
    finally:
        listener.close()


def test_waiting_for_a_run_that_already_ended_reads_it_once(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(rt)
    run_id = h.start(chain())
    h.drain()
    reads = counting_reads(rt, monkeypatch)
    assert client.wait_for_run(run_id, timeout=5, interval=NEVER, rt=rt)["status"] == "COMPLETED"
    assert len(reads) == 2  # the status, then the document's own read


def test_a_finish_that_gets_the_lock_late_reads_the_state_the_holder_left(rt: Runtime) -> None:
    """A finish's first round trip takes the writer lock and reads the run. When another
    writer holds the lock then, that read is stale by the time the lock comes: the finish
    reads again, and records what the holder left (here, two more completion checks)."""
    h = Harness(rt)
    run_id = h.start(chain())
    while h.queue:
        h._publish(h.process(h.queue.popleft()).dispatch)
    assert rt.state.end(run_id, "completed", None, [event("run_completed")])
    rt.redis.set(keys.lock_key(run_id), "another-writer", px=30_000)
    before = int(rt.redis.get(keys.checks_key(run_id)) or 0)

    def holder() -> None:
        time.sleep(0.3)
        rt.redis.incrby(keys.checks_key(run_id), 2)  # what the holder did meanwhile
        rt.redis.delete(keys.lock_key(run_id))

    other = threading.Thread(target=holder)
    other.start()
    assert lifecycle.finish(rt, run_id) is not None
    other.join()
    assert rt.store.get_stats(run_id)["completion_checks"] == before + 2
    assert rt.redis.get(keys.lock_key(run_id)) is None


def _counter_at_zero(rt: Runtime) -> str:
    """A run whose last token is committed and whose completion check has not run."""
    h = Harness(rt)
    run_id = h.start(chain())
    while h.queue:
        h._publish(h.process(h.queue.popleft()).dispatch)
    assert rt.state.meta(run_id)["state"] == "running"
    return run_id


@pytest.mark.parametrize("scripts_lost", [False, True])
def test_the_check_ends_the_run_in_the_round_trip_that_locks_and_reads_it(
    rt: Runtime, scripts_lost: bool
) -> None:
    """The completion check's verdict is recorded in Redis in the same transaction as the
    finish takes the lock and reads the run (runstate.ended_state); a Redis that lost its
    scripts (SCRIPT FLUSH, a restart) still ends and records the run."""
    run_id = _counter_at_zero(rt)
    if scripts_lost:
        rt.redis.script_flush()
    assert lifecycle.check_completion(rt, run_id) == "completed"
    doc = client.get_run(run_id, rt)
    assert doc["status"] == "COMPLETED"
    assert [e.type for e in rt.store.list_events(run_id)][-1] == "run_completed"
    assert not rt.redis.exists(keys.meta_key(run_id), keys.lock_key(run_id))


def test_a_check_that_finds_the_lock_held_still_ends_the_run_in_redis(rt: Runtime) -> None:
    """The end goes with the first lock attempt, whatever that attempt gets: a finish that
    waits for another writer's lock (a flush) records the run ended by then."""
    run_id = _counter_at_zero(rt)
    rt.redis.set(keys.lock_key(run_id), "another-writer", px=30_000)
    seen: list[str] = []

    def holder() -> None:
        time.sleep(0.3)
        seen.append(rt.state.meta(run_id).get("state", ""))
        rt.redis.delete(keys.lock_key(run_id))

    other = threading.Thread(target=holder)
    other.start()
    assert lifecycle.check_completion(rt, run_id) == "completed"
    other.join()
    assert seen == ["completed"]
    assert client.get_run(run_id, rt)["status"] == "COMPLETED"


def diamond() -> dict[str, Any]:
    def node(node_id: str) -> dict[str, Any]:
        return {"id": node_id, "type": "transform", "config": {"expression": f"['{node_id}']"}}

    edges = [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]
    return {
        "nodes": [node(n) for n in "ABCD"],
        "edges": [{"from": a, "to": b} for a, b in edges],
    }


def no_completion_view(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: Any, run_id: str) -> Any:
        raise AssertionError("the completion check read the run again")

    monkeypatch.setattr(RunState, "completion_view", refused)


def test_the_commit_that_ends_a_run_reads_what_its_completion_check_needs(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit that takes the counter to 0 reads the arrivals at the run's joins and
    counts the completion check (lua/commit_node.lua): the check decides on that read,
    with no round trip of its own, and the run's statistics still count one check."""
    h = Harness(rt)
    h.start(diamond())
    no_completion_view(monkeypatch)
    last: list[Any] = []
    while h.queue:
        token = h.queue.popleft()
        outcome = h.process(token)
        last.append(outcome)
        h.act(token, outcome)
    # the join fired (its "#fin" is set): it waits for nothing more, whatever its count
    assert last[-1].joins_at_zero == {"D|": WAITS_FOR_NOTHING}
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["stats"]["completion_checks"] == 1


def test_a_join_left_waiting_when_the_counter_reaches_0_fails_the_run(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault that loses an arrival at a join leaves it waiting when the counter reaches
    0: the commit's read of the joins shows it, and the run fails naming the join instead
    of ending COMPLETED (or staying RUNNING)."""
    h = Harness(rt)
    h.start(diamond())
    no_completion_view(monkeypatch)
    while h.queue:
        token = h.queue.popleft()
        if token.to_node in "BC" and rt.redis.hget(keys.joins_key(h.run_id), "D|#n") == "1":
            rt.redis.hincrby(keys.joins_key(h.run_id), "D|#n", -1)  # the first arrival lost
        h.act(token, h.process(token))
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "FAILED"
    assert "join 'D' was left waiting" in doc["error"]
