"""``wfrunner replay`` and ``wfrunner.replay_run`` on runs a real Celery worker ran:
completed, failed, cancelled, and one replayed mid-flight while a node is blocked in its
handler (compared with Redis), each with no difference; a hot counter changed by hand is
reported by the command with exit 1, an unknown run id is exit 2."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import wfrunner
from tests.e2e.handlers import gates
from tests.entry_point import invoke
from wfrunner import client, lifecycle, runtime
from wfrunner.engine import keys
from wfrunner.replay import replay_run
from wfrunner.replay.run import POSTGRESQL, REDIS


def _fn(node_id: str, name: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def _gated_join(gate: str) -> dict[str, Any]:
    """A -> W (blocks on the gate), B -> J (a join of W and B)."""
    return {
        "nodes": [
            _fn("A", "t.echo"),
            _fn("W", "t.wait", gate=gate),
            _fn("B", "t.increment"),
            _fn("J", "t.join_count", tag=gate),
        ],
        "edges": [
            {"from": "A", "to": "W"},
            {"from": "A", "to": "B"},
            {"from": "W", "to": "J"},
            {"from": "B", "to": "J"},
        ],
    }


@pytest.fixture()
def gate(worker: Any) -> Iterator[str]:
    """A gate of the t.wait handler, opened when the test ends whatever happened."""
    name = f"replay-{uuid.uuid4().hex[:8]}"
    event = gates.setdefault(name, threading.Event())
    yield name
    event.set()


def _start(definition: dict[str, Any], inputs: Any = None) -> str:
    result = wfrunner.start_run.delay(client.register_workflow(definition), inputs)
    run_id = result.get(timeout=30)
    assert isinstance(run_id, str)
    return run_id


def _until(run_id: str, nodes: dict[str, str]) -> None:
    """Wait until the run's nodes show these statuses (bounded by attempts, not time)."""
    for _ in range(1500):
        doc = client.get_run(run_id)
        if all(doc["nodes"][n]["status"] == s for n, s in nodes.items()):
            return
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {nodes}: {doc['nodes']}")


def _identical(run_id: str, source: str) -> None:
    report = replay_run(run_id)
    assert report.source == source
    assert report.differences == [], "\n".join(report.lines())


def test_a_completed_run_replays_with_no_difference(run_workflow: Any) -> None:
    doc = run_workflow(
        {
            "nodes": [_fn("A", "t.echo"), _fn("B", "t.increment"), _fn("C", "t.increment")],
            "edges": [{"from": "A", "to": "B"}, {"from": "A", "to": "C"}],
        },
        {"x": 1},
    )
    assert doc["status"] == "COMPLETED"
    _identical(doc["run_id"], POSTGRESQL)


def test_a_failed_run_replays_with_no_difference(run_workflow: Any) -> None:
    doc = run_workflow(
        {
            "nodes": [_fn("A", "t.echo"), _fn("B", "t.boom"), _fn("C", "t.echo")],
            "edges": [{"from": "A", "to": "B"}, {"from": "B", "to": "C"}],
        }
    )
    assert doc["status"] == "FAILED"
    _identical(doc["run_id"], POSTGRESQL)


def test_a_cancelled_run_replays_with_no_difference(gate: str) -> None:
    run_id = _start(_gated_join(gate), {"x": 1})
    _until(run_id, {"W": "RUNNING", "B": "COMPLETED"})
    assert lifecycle.fail(runtime.runtime(), run_id, "cancelled by test", kind="cancelled")
    assert client.get_run(run_id)["status"] == "CANCELLED"
    _identical(run_id, POSTGRESQL)
    assert replay_run(run_id).state.error == "cancelled by test"


def test_cancel_run_with_what_it_cut_short_replays_with_no_difference(gate: str) -> None:
    run_id = _start(_gated_join(gate), {"x": 1})
    _until(run_id, {"W": "RUNNING", "B": "COMPLETED"})
    doc = wfrunner.cancel_run(run_id, "by test", terminate=False)
    assert doc["nodes"]["W"]["status"] == "FAILED"
    _identical(run_id, POSTGRESQL)
    assert replay_run(run_id).state.node_statuses()["W"].value == "FAILED"


def _approval() -> dict[str, Any]:
    return {
        "nodes": [_fn("A", "t.echo"), {"id": "ok", "type": "human"}, _fn("C", "t.echo")],
        "edges": [{"from": "A", "to": "ok"}, {"from": "ok", "to": "C"}],
    }


def test_a_run_waiting_for_approval_replays_as_redis_holds_it_and_once_approved(
    worker: Any,
) -> None:
    run_id = _start(_approval(), {"x": 1})
    _until(run_id, {"ok": "WAITING"})
    report = replay_run(run_id)
    assert report.source == REDIS
    assert report.differences == [], "\n".join(report.lines())
    assert report.state.status.value == "WAITING" and report.state.counter == 1
    wfrunner.approve(run_id, "ok", by="tester")
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"
    _identical(run_id, POSTGRESQL)


def test_a_run_mid_flight_replays_as_redis_holds_it(gate: str, engine_env: dict[str, str]) -> None:
    """W blocks in its handler while B has arrived at the join J: replay matches the
    counter, outbox, applied op keys, the join's arrival and ctx Redis holds."""
    run_id = _start(_gated_join(gate), {"x": 1})
    _until(run_id, {"W": "RUNNING", "B": "COMPLETED"})
    report = replay_run(run_id)
    assert report.source == REDIS
    assert report.differences == [], "\n".join(report.lines())
    state = report.state
    assert state.counter == 1  # A -> W, being run
    assert {t.to_node for t in state.pending.values()} == {"W"}
    assert state.joins["J|#n"] == "1"

    done = invoke("replay", run_id, env={**os.environ, **engine_env})
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"run {run_id}: RUNNING, ")
    assert "replayed against redis: identical" in done.stdout

    counter = keys.counter_key(run_id)
    runtime.runtime().redis.incrby(counter, 2)
    try:
        tampered = invoke("replay", run_id, env={**os.environ, **engine_env})
        as_json = invoke("replay", run_id, "--json", env={**os.environ, **engine_env})
    finally:
        runtime.runtime().redis.incrby(counter, -2)
    assert tampered.returncode == 1
    assert "redis.counter: replayed 1, stored 3" in tampered.stdout.splitlines()
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["differences"] == [
        {"field": "redis.counter", "replayed": 1, "stored": 3}
    ]

    gates[gate].set()
    assert client.wait_for_run(run_id, timeout=60)["status"] == "COMPLETED"
    _identical(run_id, POSTGRESQL)


def test_an_unknown_run_id_is_exit_2(engine_env: dict[str, str]) -> None:
    done = invoke("replay", "no-such-run", env={**os.environ, **engine_env})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: no run with id 'no-such-run'\n"
