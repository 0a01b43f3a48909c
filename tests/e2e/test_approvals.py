"""Human approval nodes on a real worker, Redis and PostgreSQL: the run WAITING with no
worker holding anything, approve / reject / the deadline deciding, and the history."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import wfrunner
from tests.e2e.handlers import gates
from tests.e2e.waiting import until
from wfrunner import client, recovery
from wfrunner.engine import keys
from wfrunner.errors import ConflictError, NotFoundError
from wfrunner.runtime import runtime
from wfrunner.states import RunStatus
from wfrunner.tasks.runs import reconcile_shard


def approval_flow(gate: dict[str, Any] | None = None) -> dict[str, Any]:
    """A -> gate (human) -> B, B reading the approver's data."""
    return {
        "metadata": {"name": "approval"},
        "nodes": [
            {"id": "A", "type": "function", "config": {"function_name": "t.increment"}},
            {"id": "gate", "type": "human", "config": {"prompt": "ship it?"}, **(gate or {})},
            {"id": "B", "type": "transform", "config": {"expression": "input.data"}},
        ],
        "edges": [{"from": "A", "to": "gate"}, {"from": "gate", "to": "B"}],
    }


def start(worker: Any, definition: dict[str, Any], inputs: Any = None) -> str:
    workflow_id = client.register_workflow(definition)
    result = wfrunner.start_run.delay(workflow_id, inputs)
    return str(result.get(timeout=30))


def waiting(run_id: str, node: str = "gate") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        doc = client.get_run(run_id)
        return doc if doc["nodes"][node]["status"] == "WAITING" else None

    return until(check)  # type: ignore[no-any-return]


def kinds(run_id: str) -> list[str]:
    return [e.type for e in runtime().store.list_events(run_id)]


def test_a_run_waits_for_approval_holding_nothing_then_goes_on(worker: Any) -> None:
    run_id = start(worker, approval_flow(), {"x": 1})
    doc = waiting(run_id)
    assert doc["status"] == "WAITING"
    assert doc["nodes"]["A"]["status"] == "COMPLETED"
    assert doc["nodes"]["B"]["status"] == "PENDING"
    rt = runtime()
    until(lambda: rt.store.get_run(run_id).status is RunStatus.WAITING)  # runs --status
    # no delivery holds the token: its entry is the request's, not a lease
    entries = rt.state.client.hvals(keys.running_key(run_id))
    assert [e.split("|")[1] for e in entries] == ["approval"]
    assert rt.state.counter(run_id) == 1  # the waiting token keeps the run from completing

    after = wfrunner.approve(run_id, "gate", comment="looks fine", by="alice", data={"ok": 7})
    assert after["status"] in ("RUNNING", "COMPLETED")  # no longer waiting
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED", doc["error"]
    gate = doc["nodes"]["gate"]
    assert gate["status"] == "COMPLETED" and gate["attempts"] == 1
    assert gate["output"]["approved"] is True
    assert (gate["output"]["by"], gate["output"]["comment"]) == ("alice", "looks fine")
    assert doc["nodes"]["B"]["output"] == {"ok": 7}
    events = rt.store.list_events(run_id)
    decided = [e for e in events if e.type == "approval_decided"]
    assert len(decided) == 1
    assert decided[0].node_id == "gate"
    assert decided[0].data["by"] == "alice" and decided[0].data["decision"] == "approve"
    assert decided[0].data["at"] >= events[0].data["t"]
    assert kinds(run_id).count("approval_requested") == 1


def test_a_rejection_fails_the_node_and_the_run_with_the_comment(worker: Any) -> None:
    run_id = start(worker, approval_flow(), {"x": 1})
    waiting(run_id)
    wfrunner.reject(run_id, "gate", comment="too expensive", by="bob")
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "FAILED"
    assert doc["error"] == "node 'gate' failed: rejected by bob: too expensive"
    assert doc["nodes"]["gate"]["status"] == "FAILED"
    assert doc["nodes"]["B"]["status"] == "SKIPPED"


def test_a_decision_is_taken_once_and_only_on_a_waiting_human_node(worker: Any) -> None:
    flow = approval_flow()
    # B holds the run open until the second decision was refused: a run that had already
    # completed would refuse it for having ended, not for being decided
    flow["nodes"][2] = {
        "id": "B",
        "type": "function",
        "config": {"function_name": "t.wait", "gate": "decided-once"},
    }
    run_id = start(worker, flow, {"x": 1})
    with pytest.raises(NotFoundError, match="has no human node 'A' \\(its human nodes: gate\\)"):
        wfrunner.approve(run_id, "A")
    waiting(run_id)
    wfrunner.approve(run_id, "gate", by="alice")
    try:
        with pytest.raises(ConflictError, match="already decided \\(approve by alice at "):
            wfrunner.reject(run_id, "gate", by="mallory")
    finally:
        gates.setdefault("decided-once", threading.Event()).set()
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED"
    with pytest.raises(ConflictError, match="has ended \\(COMPLETED\\)"):
        wfrunner.approve(run_id, "gate")
    with pytest.raises(NotFoundError):
        wfrunner.approve("no-such-run", "gate")


def test_the_run_does_not_complete_while_an_approval_waits(worker: Any) -> None:
    """A branch beside the approval finishes; the run waits for the approval anyway."""
    definition = {
        "nodes": [
            {"id": "A", "type": "function", "config": {"function_name": "t.increment"}},
            {"id": "gate", "type": "human"},
            {"id": "C", "type": "function", "config": {"function_name": "t.increment"}},
        ],
        "edges": [{"from": "A", "to": "gate"}, {"from": "A", "to": "C"}],
    }
    run_id = start(worker, definition, {"x": 1})
    until(lambda: client.get_run(run_id)["nodes"]["C"]["status"] == "COMPLETED")
    doc = waiting(run_id)
    time.sleep(0.5)
    assert client.get_run(run_id)["status"] == "WAITING"
    wfrunner.approve(run_id, "gate")
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED"
    assert doc["stats"]["completion_checks"] == 1


@pytest.mark.parametrize(
    "policy, status, error",
    [
        (None, "FAILED", "node 'gate' failed: approval timed out after"),
        ("approve", "COMPLETED", None),
    ],
)
def test_an_undecided_approval_is_decided_by_its_timeout(
    worker: Any, policy: str | None, status: str, error: str | None
) -> None:
    gate: dict[str, Any] = {"timeout_ms": 500}
    if policy:
        gate["config"] = {"on_timeout": policy}
    run_id = start(worker, approval_flow(gate), {"x": 1})
    waiting(run_id)
    rt = runtime()
    assert run_id not in recovery.reconcile(rt)  # before the deadline it is left alone
    time.sleep(0.6)
    # the pass of the run's shard publishes it at the deadline
    assert reconcile_shard(rt.state.shard_of(run_id))[run_id] == 1
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == status, kinds_live(run_id)
    if error:
        assert doc["error"].startswith(error)
    else:
        assert doc["nodes"]["gate"]["output"]["by"] == "timeout"
    decided = [e for e in rt.store.list_events(run_id) if e.type == "approval_decided"]
    assert [e.data["by"] for e in decided] == ["timeout"]


def test_a_human_node_decided_inside_a_loop_waits_once_per_pass(worker: Any) -> None:
    """Each pass of a loop asks again; each decision goes to the pass that waits."""
    definition = {
        "nodes": [
            {"id": "gate", "type": "human"},
            {
                "id": "again",
                "type": "loop",
                "config": {
                    "max_iterations": 3,
                    "loop_back_to": "gate",
                    "condition": "iteration < 2",
                },
            },
            {"id": "done", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "gate", "to": "again"}, {"from": "again", "to": "done"}],
    }
    run_id = start(worker, definition, {"x": 1})
    waiting(run_id)
    wfrunner.approve(run_id, "gate", data={"pass": 1})
    until(lambda: kinds_live(run_id).count("approval_requested") == 2)
    wfrunner.approve(run_id, "gate", data={"pass": 2})
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["gate"]["iterations"] == 2
    assert doc["nodes"]["done"]["output"]["data"] == {"pass": 2}


def kinds_live(run_id: str) -> list[str]:
    run = runtime().store.get_run(run_id)
    return [e["type"] for e in client.run_events(run, runtime())]
