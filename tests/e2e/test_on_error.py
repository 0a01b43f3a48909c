"""Failure handling on a real worker, Redis and PostgreSQL: a node's ``on_error`` node
takes over when the node fails for good (the run goes on), and the workflow's
``on_failure`` handler is called once for a run that ends FAILED."""

from __future__ import annotations

from typing import Any

from tests.e2e import flow_handlers
from tests.e2e.test_approvals import start, until
from wfrunner import client
from wfrunner.runtime import runtime


def fn(node_id: str, name: str, **extra: Any) -> dict[str, Any]:
    config = {"function_name": name, **extra.pop("config", {})}
    return {"id": node_id, "type": "function", "config": config, **extra}


def caught_flow(tag: str, retry: dict[str, Any] | None = None) -> dict[str, Any]:
    """A -> X (fails) -> B -> J;  X on_error H -> J;  A -> C -> J (J joins three)."""
    failing = fn("X", "t.always_fails", config={"tag": tag}, on_error="H")
    if retry:
        failing["retry"] = retry
    return {
        "metadata": {"name": f"caught-{tag}"},
        "nodes": [
            fn("A", "t.increment"),
            failing,
            fn("B", "t.increment"),
            fn("C", "t.increment"),
            fn("H", "t.recover"),
            {"id": "J", "type": "aggregate", "config": {"strategy": "merge"}},
        ],
        "edges": [
            {"from": "A", "to": "X"},
            {"from": "X", "to": "B"},
            {"from": "B", "to": "J"},
            {"from": "H", "to": "J"},
            {"from": "A", "to": "C"},
            {"from": "C", "to": "J"},
        ],
    }


def test_on_error_catches_a_failing_handler_and_the_run_completes(worker: Any) -> None:
    run_id = start(worker, caught_flow("plain"), {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    nodes = doc["nodes"]
    x = nodes["X"]
    assert x["status"] == "FAILED" and x["caught"] is True
    assert "disk on fire (plain)" in x["error"]
    assert nodes["B"]["status"] == "SKIPPED"  # the normal successor is dead
    assert nodes["H"]["status"] == "COMPLETED"
    assert nodes["H"]["output"] == {
        "recovered": "X",
        "error": x["error"],
        "was_given": {"x": 2},
    }
    # the join still fires, with its live inputs: the handler's and C's
    assert nodes["J"]["status"] == "COMPLETED"
    assert nodes["J"]["output"]["recovered"] == "X" and nodes["J"]["output"]["x"] == 3
    assert doc["error"] is None
    # a caught failure is no dead letter
    assert not [d for d in runtime().store.list_dead_letters(None) if d.run_id == run_id]


def test_a_node_with_retries_spends_them_before_on_error_takes_over(worker: Any) -> None:
    retry = {"max_attempts": 3, "backoff_ms": 10, "backoff_multiplier": 1.0}
    run_id = start(worker, caught_flow("retried", retry), {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert flow_handlers.attempts["retried"] == 3
    assert doc["nodes"]["X"]["attempts"] == 3
    assert doc["nodes"]["X"]["caught"] is True
    assert doc["nodes"]["H"]["status"] == "COMPLETED"
    kinds = [e.type for e in runtime().store.list_events(run_id)]
    assert kinds.count("node_retrying") == 2 and "run_failed" not in kinds


def test_without_on_error_the_failure_still_fails_the_run(worker: Any) -> None:
    flow = caught_flow("uncaught")
    del flow["nodes"][1]["on_error"]
    flow["edges"].append({"from": "X", "to": "H"})
    run_id = start(worker, flow, {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "FAILED"
    assert "caught" not in doc["nodes"]["X"]
    until(lambda: True)
