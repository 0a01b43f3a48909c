"""Failure handling on a real worker, Redis and PostgreSQL: a node's ``on_error`` node
takes over when the node fails for good (the run goes on), and the workflow's
``on_failure`` handler is called once for a run that ends FAILED."""

from __future__ import annotations

from typing import Any

from tests.e2e import flow_handlers
from tests.e2e.test_approvals import start, until
from wfrunner import client
from wfrunner.replay import replay_run
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
    # its events alone rebuild what PostgreSQL stores (the caught commit consumed X's token)
    report = replay_run(run_id)
    assert report.identical, report.lines()


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


def failing_with_handler(name: str, handler: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "on_failure": {"function_name": handler},
        "nodes": [fn("A", "t.increment"), fn("X", "t.boom", config={"message": "no disk"})],
        "edges": [{"from": "A", "to": "X"}],
    }


def handler_events(run_id: str) -> list[dict[str, Any]]:
    return [
        e.as_event()
        for e in runtime().store.list_events(run_id)
        if e.type.startswith("failure_handler_")
    ]


def test_on_failure_runs_once_for_a_failed_run(worker: Any) -> None:
    from wfrunner.tasks.aftermath import on_run_failed

    run_id = start(worker, failing_with_handler("notified", "t.notify_ops"), {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "FAILED"
    until(lambda: handler_events(run_id))
    [call] = flow_handlers.failure_calls[run_id]
    assert call["run_id"] == run_id and call["workflow_id"] == doc["workflow_id"]
    assert call["node"] == "X" and call["inputs"] == {"x": 1}
    assert call["error"] == doc["error"] and "no disk" in call["error"]
    # delivered again (at least once): neither called nor recorded a second time
    assert on_run_failed.run(run_id) == "already"
    [recorded] = handler_events(run_id)
    assert recorded["type"] == "failure_handler_ran" and recorded["handler"] == "t.notify_ops"
    assert len(flow_handlers.failure_calls[run_id]) == 1
    doc = client.get_run(run_id)
    assert doc["status"] == "FAILED"
    assert doc["failure_handler"] == {
        "handler": "t.notify_ops",
        "status": "ran",
        "output": {"notified": True},
    }


def test_on_failure_is_not_called_for_a_caught_failure(worker: Any) -> None:
    flow = caught_flow("caught-notify")
    flow["on_failure"] = {"function_name": "t.notify_ops"}
    run_id = start(worker, flow, {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED"
    # a failed run of the same worker gets its handler called: by then this one's would be
    other = start(worker, failing_with_handler("notified-after", "t.notify_ops"), {"x": 1})
    client.wait_for_run(other, timeout=60)
    until(lambda: handler_events(other))
    assert run_id not in flow_handlers.failure_calls
    assert handler_events(run_id) == [] and "failure_handler" not in client.get_run(run_id)


def test_a_failing_on_failure_handler_is_recorded_and_the_run_stays_failed(worker: Any) -> None:
    run_id = start(worker, failing_with_handler("pager-down", "t.notify_broken"), {"x": 1})
    client.wait_for_run(run_id, timeout=60)
    [recorded] = until(lambda: handler_events(run_id))
    assert recorded["type"] == "failure_handler_failed"
    assert recorded["error"] == "RuntimeError: pager is down"
    doc = client.get_run(run_id)
    assert doc["status"] == "FAILED" and "no disk" in doc["error"]
    assert doc["failure_handler"]["status"] == "failed"


def test_a_cel_error_in_the_nodes_routing_is_caught_too(worker: Any) -> None:
    flow = {
        "metadata": {"name": "caught-cel"},
        "nodes": [
            fn("X", "t.increment", on_error="H"),
            fn("B", "t.increment"),
            fn("H", "t.recover"),
        ],
        "edges": [{"from": "X", "to": "B", "condition": "output.nope == 1"}],
    }
    run_id = start(worker, flow, {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["X"]["caught"] is True and "output.nope == 1" in doc["nodes"]["X"]["error"]
    assert doc["nodes"]["B"]["status"] == "SKIPPED"
    assert doc["nodes"]["H"]["output"]["was_given"] == {"x": 1}


def test_the_reconciler_sends_a_lost_on_failure_task_again(worker: Any) -> None:
    """A run recorded FAILED whose on_run_failed message never came (here: its end was
    recorded by hand, so nothing sent it) gets it from the reconciler's pass."""
    from wfrunner import failure_handler
    from wfrunner.states import RunStatus

    rt = runtime()
    notified = start(worker, failing_with_handler("lost-notify", "t.notify_ops"), {"x": 1})
    client.wait_for_run(notified, timeout=60)
    until(lambda: handler_events(notified))
    workflow_id = client.get_run(notified)["workflow_id"]
    lost = rt.store.create_run(workflow_id, {"x": 5}, 1).id
    assert rt.store.transition_run(lost, RunStatus.FAILED, error="node 'X' failed: gone")
    assert failure_handler.reconcile(rt, after_s=3600) == []  # too recent to be lost
    resent = failure_handler.reconcile(rt, after_s=0)
    assert lost in resent and notified not in resent
    [recorded] = until(lambda: handler_events(lost))
    assert recorded["type"] == "failure_handler_ran"
    [call] = flow_handlers.failure_calls[lost]
    assert call["error"] == "node 'X' failed: gone" and call["inputs"] == {"x": 5}
