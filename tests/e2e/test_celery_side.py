"""How the engine uses Celery: a delivery's publishes reach Redis in one batch, and
wait_for_run wakes on the run's end (Flower's enable_events: tests/e2e/test_cli_worker.py)."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import redis

import wfrunner
from tests.e2e.handlers import gates
from wfrunner import client, lifecycle, runtime
from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.settings import HARD_LIMIT_GRACE
from wfrunner.tasks import execution, inline
from wfrunner.tasks.finisher import FINISHER

#: a queue no worker of the test session consumes
QUEUE = "wfrunner.test-publishing"


@pytest.fixture()
def queue(engine_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    monkeypatch.setattr(execution, "TASK_QUEUE", QUEUE)
    r = redis.Redis.from_url(engine_env["WFRUNNER_REDIS_URL"])
    r.delete(QUEUE)
    yield r
    r.delete(QUEUE)
    r.close()


def test_a_deliverys_publishes_reach_redis_in_one_batch(queue: redis.Redis) -> None:
    tokens = [Token.entry("r-batch", f"n{i}") for i in range(50)]
    with execution.publishing() as producer:
        execution.dispatch(tokens, "wf-batch", producer=producer)
        assert queue.llen(QUEUE) == 0, "messages were sent one by one"
    assert queue.llen(QUEUE) == 50


def test_an_error_inside_the_batch_sends_nothing(queue: redis.Redis) -> None:
    """The tokens stay in the run's outbox (the reconciler or a retry sends them)."""
    tokens = [Token.entry("r-batch", f"n{i}") for i in range(5)]
    with pytest.raises(RuntimeError), execution.publishing() as producer:
        execution.dispatch(tokens, "wf-batch", producer=producer)
        raise RuntimeError("the delivery fails before it is done")
    assert queue.llen(QUEUE) == 0


def test_wait_for_run_wakes_on_the_end_not_on_its_interval(worker: Any) -> None:
    wf = {
        "nodes": [
            {"id": "a", "type": "function", "config": {"function_name": "t.wait", "gate": "wake"}},
            {"id": "b", "type": "function", "config": {"function_name": "t.echo"}},
        ],
        "edges": [{"from": "a", "to": "b"}],
    }
    run_id = wfrunner.start_run.delay(client.register_workflow(wf), {"v": 1}).get(timeout=30)
    done: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: done.update(doc=client.wait_for_run(run_id, timeout=60, interval=3600)),
        daemon=True,
    )
    waiter.start()
    channel = keys.ended_channel(run_id)
    r = runtime.runtime().redis
    for _ in range(500):
        if dict(r.pubsub_numsub(channel)).get(channel):
            break
        time.sleep(0.01)
    gates.setdefault("wake", threading.Event()).set()
    waiter.join(30)
    assert not waiter.is_alive(), "wait_for_run did not wake on the run's end"
    assert done["doc"]["status"] == "COMPLETED"


def _chain(*nodes: dict[str, Any]) -> str:
    ids = [n["id"] for n in nodes]
    edges = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
    return client.register_workflow({"nodes": list(nodes), "edges": edges})


def _echo(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": "t.echo"}, **extra}


@pytest.fixture()
def carried() -> Iterator[list[str]]:
    """Run ids of _carry_run; those a test leaves running (their tokens sit in a queue no
    worker reads) are failed afterwards, so no other test sees them idle."""
    run_ids: list[str] = []
    yield run_ids
    for run_id in run_ids:
        lifecycle.fail(runtime.runtime(), run_id, "the test is over", kind="cancelled")


def _carry_run(workflow_id: str, inline_ms: int, carried: list[str]) -> str:
    """Start a run and let one task carry its entry token, as execute_node does."""
    rt = runtime.runtime()
    run_id = uuid.uuid4().hex
    carried.append(run_id)
    (entry,) = lifecycle.start(rt, run_id, workflow_id, {"v": 1})
    execution.carry(rt, workflow_id, [entry], nonce=uuid.uuid4().hex, inline_ms=inline_ms)
    FINISHER.drain()  # the run's end, recorded by this process's finisher thread
    return run_id


def _queued(queue: redis.Redis) -> list[str]:
    return [json.loads(raw)["headers"]["argsrepr"] for raw in queue.lrange(QUEUE, 0, -1)]


def test_a_task_runs_a_chain_and_ends_the_run_without_a_message(
    queue: redis.Redis, carried: list[str]
) -> None:
    run_id = _carry_run(_chain(*(_echo(f"n{i}") for i in range(5))), 60_000, carried)
    assert queue.llen(QUEUE) == 0
    doc = client.get_run(run_id)
    assert doc["status"] == "COMPLETED"  # its end was recorded in the task, too
    assert doc["nodes"]["n4"]["output"] == {"v": 1}


def test_a_successor_with_a_timeout_is_its_own_message(
    queue: redis.Redis, carried: list[str]
) -> None:
    workflow_id = _chain(_echo("a"), _echo("b"), _echo("slow", timeout_ms=5000), _echo("c"))
    run_id = _carry_run(workflow_id, 60_000, carried)
    (message,) = queue.lrange(QUEUE, 0, -1)
    sent = json.loads(message)
    assert sent["headers"]["argsrepr"] == f"run={run_id} node=slow from=b"
    assert sent["headers"]["shadow"] == f"wfrunner.node:{workflow_id}.slow"  # Flower's name
    assert sent["headers"]["timelimit"] == [5 + HARD_LIMIT_GRACE, 5]
    assert client.get_run(run_id)["nodes"]["b"]["status"] == "COMPLETED"


def _diamond() -> str:
    edges = [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]
    return client.register_workflow(
        {
            "nodes": [_echo(n) for n in "ABC"]
            + [{"id": "D", "type": "aggregate", "config": {"strategy": "merge"}}],
            "edges": [{"from": a, "to": b} for a, b in edges],
        }
    )


def test_a_diamond_of_quick_nodes_is_one_task(
    queue: redis.Redis, carried: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B and C, seen quick in this process, both run in A's task: no message at all."""
    workflow_id = _diamond()
    durations = inline.Durations()
    for node in "ABCD":
        durations.record(workflow_id, node, 0.001)
    monkeypatch.setattr(execution, "DURATIONS", durations)
    run_id = _carry_run(workflow_id, 60_000, carried)
    assert _queued(queue) == []
    doc = client.get_run(run_id)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == {"v": 1}  # B's and C's, merged


def test_a_slow_sibling_is_its_own_message(
    queue: redis.Redis, carried: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """C took long here before: it is sent to run beside B, not after it."""
    workflow_id = _diamond()
    durations = inline.Durations()
    durations.record(workflow_id, "C", inline.QUICK_S * 10)
    monkeypatch.setattr(execution, "DURATIONS", durations)
    run_id = _carry_run(workflow_id, 60_000, carried)
    assert _queued(queue) == [f"run={run_id} node=C from=A"]
    assert client.get_run(run_id)["nodes"]["B"]["status"] == "COMPLETED"


def _start_run(workflow_id: str, inline_ms: int, carried: list[str]) -> str:
    """Start a run and carry its entries as start_run does."""
    rt = runtime.runtime()
    run_id = uuid.uuid4().hex
    carried.append(run_id)
    entries = lifecycle.start(rt, run_id, workflow_id, {"v": 1})
    execution.carry_entries(rt, workflow_id, entries, nonce=run_id, inline_ms=inline_ms)
    FINISHER.drain()  # the run's end, recorded by this process's finisher thread
    return run_id


def _quick(workflow_id: str, nodes: Iterable[str], monkeypatch: pytest.MonkeyPatch) -> None:
    durations = inline.Durations()
    for node in nodes:
        durations.record(workflow_id, node, 0.001)
    monkeypatch.setattr(execution, "DURATIONS", durations)


def test_a_start_runs_a_diamond_of_quick_nodes_itself(
    queue: redis.Redis, carried: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow_id = _diamond()
    _quick(workflow_id, "ABCD", monkeypatch)
    run_id = _start_run(workflow_id, 60_000, carried)
    assert _queued(queue) == []
    doc = client.get_run(run_id)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == {"v": 1}


def test_a_start_sends_an_entry_with_a_timeout_and_a_slow_one(
    queue: redis.Redis, carried: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three entries: the quick one runs in the start's task; one with a timeout (its
    limits belong to its own task) and one never seen here go out to run beside it."""
    workflow_id = client.register_workflow(
        {
            "nodes": [_echo("quick"), _echo("limited", timeout_ms=5000), _echo("unseen")],
            "edges": [],
        }
    )
    _quick(workflow_id, ["quick", "limited"], monkeypatch)
    run_id = _start_run(workflow_id, 60_000, carried)
    assert sorted(_queued(queue)) == [
        f"run={run_id} node=limited from=-",
        f"run={run_id} node=unseen from=-",
    ]
    doc = client.get_run(run_id)
    assert doc["nodes"]["quick"]["status"] == "COMPLETED"
    assert doc["status"] == "RUNNING"


def test_a_start_with_no_time_to_carry_sends_its_entries(
    queue: redis.Redis, carried: list[str]
) -> None:
    run_id = _start_run(_chain(_echo("a"), _echo("b")), 0, carried)
    assert _queued(queue) == [f"run={run_id} node=a from=-"]
    assert client.get_run(run_id)["nodes"].get("a", {}).get("status") != "COMPLETED"


def test_the_run_id_is_the_starts_result_before_its_nodes_run(worker: Any) -> None:
    """start_run runs its entry node itself, but a caller of .get() has the run id
    while that node is still running."""
    gate = uuid.uuid4().hex
    workflow_id = _chain(
        {"id": "a", "type": "function", "config": {"function_name": "t.wait", "gate": gate}}
    )
    try:
        run_id = wfrunner.start_run.delay(workflow_id, {"v": 1}).get(timeout=20)
        assert client.get_run(run_id)["status"] == "RUNNING"
    finally:
        gates.setdefault(gate, threading.Event()).set()
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"


def test_a_start_delivered_again_goes_on_from_what_its_first_delivery_left(
    worker: Any,
) -> None:
    """The first delivery of start_run ran the entry node and died before going on: its
    message comes back (same task id), finds the entry committed under that id and runs
    what it emitted. Each node runs once."""
    workflow_id = _chain(_echo("a"), _echo("b"), _echo("c"))
    rt = runtime.runtime()
    run_id = uuid.uuid4().hex
    (entry,) = lifecycle.start(rt, run_id, workflow_id, {"v": 1})
    outcome = rt.executor.process(rt.ir(workflow_id), entry, nonce=run_id)
    assert [t.to_node for t in outcome.dispatch] == ["b"]  # ... and never published
    wfrunner.start_run.apply_async(args=[workflow_id, {"v": 1}], task_id=run_id)
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["c"]["output"] == {"v": 1}
    assert [doc["nodes"][n]["attempts"] for n in "abc"] == [1, 1, 1]


def test_no_time_to_carry_on_sends_every_successor(queue: redis.Redis, carried: list[str]) -> None:
    run_id = _carry_run(_chain(_echo("a"), _echo("b"), _echo("c")), 0, carried)
    (sent,) = _queued(queue)
    assert sent == f"run={run_id} node=b from=a"
    assert client.get_run(run_id)["status"] == "RUNNING"


def test_a_worker_takes_node_work_before_another_start(engine_env: dict[str, str]) -> None:
    """start_run is sent at a lower priority: of a start queued first and a node queued
    after it, a worker is handed the node first (kombu's Redis priority lists)."""
    from wfrunner.tasks.runs import start_run

    queue = "wfrunner.test-priority"
    start_run.apply_async(args=["wf-x"], queue=queue)
    execution.execute_node.apply_async(args=["r", "wf-x", {}], queue=queue)
    with wfrunner.app.connection_for_read() as conn:
        channel = conn.default_channel
        try:
            first, second = (channel.basic_get(queue, no_ack=True) for _ in range(2))
        finally:
            channel.queue_purge(queue)
    assert [m.headers["task"] for m in (first, second)] == [
        "wfrunner.execute_node",
        "wfrunner.start_run",
    ]


@pytest.mark.parametrize(
    ("b_extra", "task"),
    [({}, "wfrunner.start_run"), ({"timeout_ms": 30_000}, "wfrunner.execute_node")],
    ids=["run-by-the-start", "own-message"],
)
def test_the_task_of_a_node_that_failed_its_run_is_a_failure(
    worker: Any, b_extra: dict[str, Any], task: str
) -> None:
    """Flower and Celery see the task that ran the failing node as FAILURE (not SUCCESS),
    with the node's error and the handler's traceback: start_run when it ran the node
    itself (its result stays the run id), execute_node when the node had its own message
    (a node with a timeout always does)."""
    from celery.signals import task_failure

    failures: list[tuple[str, BaseException]] = []

    def record(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        assert exception is not None
        failures.append((sender.name, exception))

    task_failure.connect(record, weak=False)
    try:
        wf = {
            "nodes": [
                {"id": "a", "type": "function", "config": {"function_name": "t.echo"}},
                {"id": "b", "type": "function", "config": {"function_name": "t.boom"}, **b_extra},
            ],
            "edges": [{"from": "a", "to": "b"}],
        }
        run_id = wfrunner.start_run.delay(client.register_workflow(wf), {"v": 1}).get(timeout=30)
        assert client.wait_for_run(run_id, timeout=30)["status"] == "FAILED"
        deadline = time.monotonic() + 10
        while not failures and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        task_failure.disconnect(record)
    ((name, exc),) = failures
    assert name == task
    assert type(exc).__name__ == "NodeFailed"
    assert f"run {run_id} failed: node 'b' failed: ValueError: boom" in str(exc)
    assert "in boom" in str(exc) and "Traceback (most recent call last)" in str(exc)
    # asked again once the node failed, the start's result is still the run id
    assert wfrunner.app.AsyncResult(run_id).get(timeout=10) == run_id
