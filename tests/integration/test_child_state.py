"""A subworkflow node's wait in the run's hot state, driven without Celery
(tests/harness.py): the child is recorded once whatever the deliveries, its end decides
the node once whatever the callers, and an end that comes before the node waits still
completes it. The launcher is the test's (no broker, no child run)."""

from __future__ import annotations

import time
from typing import Any

from tests.harness import Harness
from wfrunner import client
from wfrunner.compiler.ir import IRNode
from wfrunner.engine import keys
from wfrunner.engine.events import event
from wfrunner.engine.executor import Executor
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime

CHILD = {
    "metadata": {"name": "child"},
    "nodes": [{"id": "A", "type": "transform", "config": {"expression": "input"}}],
    "edges": [],
}
PARENT = {
    "metadata": {"name": "parent"},
    "nodes": [
        {"id": "S", "type": "subworkflow", "config": {"workflow": "child"}, "on_error": "H"},
        {"id": "T", "type": "transform", "config": {"expression": "input.A"}},
        {"id": "H", "type": "transform", "config": {"expression": "input.error"}},
    ],
    "edges": [{"from": "S", "to": "T"}],
}


def outcome(child: str, status: str = "COMPLETED", **extra: Any) -> dict[str, Any]:
    return {"child_run_id": child, "status": status, "output": None, "error": None, **extra}


def started(rt: Runtime) -> tuple[Harness, Token, list[str]]:
    """A parent run whose token to S is in hand, and the children its launcher started."""
    client.register_workflow(CHILD, rt)
    h = Harness(rt)
    h.start(PARENT, {"x": 7})
    launched: list[str] = []
    h.rt.__dict__["executor"] = Executor(
        rt.state, launch=lambda t, n, given, child: launched.append(child)
    )
    return h, h.queue.popleft(), launched


def kinds(h: Harness) -> list[str]:
    return [e["type"] for e in h.rt.state.events(h.run_id)]


def test_redelivering_a_waiting_token_records_its_child_once(rt: Runtime) -> None:
    h, token, launched = started(rt)
    for _ in range(3):
        got = h.process(token)
        assert got.ignored == f"waiting for its child run {launched[0]}"
    assert len(set(launched)) == 1  # the same child id every time: one run
    assert kinds(h).count("child_started") == 1 and kinds(h).count("node_started") == 1
    entry = rt.state.client.hget(keys.running_key(h.run_id), token.key)
    assert entry.endswith("|child")
    assert rt.state.counter(h.run_id) == 1  # the waiting token keeps the run from completing


def test_a_childs_end_decides_the_node_once(rt: Runtime) -> None:
    h, token, launched = started(rt)
    h.process(token)
    done = outcome(launched[0], output={"A": {"x": 7}})
    now = time.time()
    first = rt.state.decide_child(h.run_id, token.key, done, event("child_ended", "S"), now)
    again = rt.state.decide_child(
        h.run_id, token.key, outcome(launched[0], "FAILED"), event("child_ended", "S"), now
    )
    assert first == ("running", "decided", token, h.workflow_id)
    assert again[:3] == ("running", "already", None)
    assert rt.state.client.hget(keys.running_key(h.run_id), token.key).endswith("|retry")
    assert kinds(h).count("child_ended") == 1
    h.queue.append(token)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["S"]["output"] == {"A": {"x": 7}}
    assert doc["nodes"]["T"]["output"] == {"x": 7}
    assert doc["nodes"]["H"]["status"] == "SKIPPED"


def test_a_child_that_ends_before_the_node_waits_completes_it(rt: Runtime) -> None:
    client.register_workflow(CHILD, rt)
    h = Harness(rt)
    h.start(PARENT, {"x": 7})
    token = h.queue.popleft()

    def ends_at_once(t: Token, node: IRNode, given: Any, child: str) -> None:
        done = outcome(child, "FAILED", error="node 'A' failed: boom")
        rt.state.decide_child(t.run_id, t.key, done, event("child_ended", node.id), time.time())

    h.rt.__dict__["executor"] = Executor(rt.state, launch=ends_at_once)
    got = h.process(token)
    assert got.ignored is None and got.caught  # failed, and caught by on_error
    h.act(token, got)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["S"]["status"] == "FAILED" and doc["nodes"]["S"]["caught"]
    assert doc["nodes"]["H"]["output"].endswith("failed: node 'A' failed: boom")
    assert doc["nodes"]["T"]["status"] == "SKIPPED"


def test_a_child_ending_after_its_parent_changes_nothing(rt: Runtime) -> None:
    h, token, launched = started(rt)
    h.process(token)
    rt.state.cancel(h.run_id, "cancelled", event("run_cancelled"))
    ended = rt.state.decide_child(
        h.run_id, token.key, outcome(launched[0]), event("child_ended", "S"), time.time()
    )
    assert ended == ("cancelled", "", None, "")
