"""Cancelling runs on a real worker, Redis and PostgreSQL: nothing new starts, the run
ends CANCELLED once, and its history shows what was cut short. (Terminating a running
handler's prefork process: tests/e2e/test_cli_worker.py.)"""

from __future__ import annotations

import time
from typing import Any

import pytest

import wfrunner
from tests.e2e.handlers import calls, gates
from tests.e2e.test_approvals import approval_flow, start, until, waiting
from wfrunner import client
from wfrunner.errors import ConflictError, NotFoundError
from wfrunner.runtime import runtime


def cancelled_event(run_id: str) -> dict[str, Any]:
    found = [e for e in runtime().store.list_events(run_id) if e.type == "run_cancelled"]
    assert len(found) == 1, "a run is cancelled once"
    return dict(found[0].data)


def test_cancelling_a_run_that_waits_for_approval(worker: Any) -> None:
    run_id = start(worker, approval_flow(), {"x": 1})
    waiting(run_id)
    doc = wfrunner.cancel_run(run_id, "no longer needed", by="carol")
    assert doc["status"] == "CANCELLED"
    assert doc["error"] == "cancelled by carol: no longer needed"
    gate = doc["nodes"]["gate"]
    assert gate["status"] == "FAILED"
    assert gate["error"].startswith("cancelled while waiting for approval")
    assert doc["nodes"]["B"]["status"] == "SKIPPED"
    data = cancelled_event(run_id)
    assert (data["by"], data["reason"]) == ("carol", "no longer needed")
    assert data["cut_short"] == [{"node": "gate", "scope": "", "was": "waiting for approval"}]
    with pytest.raises(ConflictError, match="has already ended \\(CANCELLED\\)"):
        wfrunner.cancel_run(run_id)
    with pytest.raises(ConflictError, match="has ended \\(CANCELLED\\)"):
        wfrunner.approve(run_id, "gate")
    assert client.wait_for_run(run_id, timeout=5)["status"] == "CANCELLED"


def test_cancelling_a_running_node_stops_the_run_and_its_successors(worker: Any) -> None:
    tag = f"after-{time.monotonic_ns()}"
    definition = {
        "nodes": [
            {"id": "slow", "type": "function",
             "config": {"function_name": "t.wait", "gate": tag}},
            {"id": "next", "type": "function",
             "config": {"function_name": "t.count", "tag": tag}},
        ],
        "edges": [{"from": "slow", "to": "next"}],
    }  # fmt: skip
    run_id = start(worker, definition, {"x": 1})
    until(lambda: calls[f"t.wait:{tag}"] == 1)
    doc = wfrunner.cancel_run(run_id, "stop", terminate=False)
    assert doc["status"] == "CANCELLED"
    assert doc["nodes"]["slow"]["status"] == "FAILED"
    assert doc["nodes"]["slow"]["error"] == "cancelled while running (cancelled: stop)"
    assert cancelled_event(run_id)["cut_short"] == [{"node": "slow", "scope": "", "was": "running"}]
    gates[tag].set()  # the handler returns: its commit is refused, nothing follows
    time.sleep(1.0)
    assert calls[f"t.count:{tag}"] == 0
    doc = client.get_run(run_id)
    assert doc["status"] == "CANCELLED"
    assert doc["nodes"]["next"]["status"] == "SKIPPED"
    assert [e.type for e in runtime().store.list_events(run_id)].count("node_completed") == 0


def test_cancelling_a_queued_run_keeps_it_from_starting(worker: Any) -> None:
    rt = runtime()
    workflow_id = client.register_workflow(approval_flow())
    run = rt.store.create_run(workflow_id, {"x": 1}, 1)  # recorded, its start not sent yet
    doc = wfrunner.cancel_run(run.id)
    assert doc["status"] == "CANCELLED"
    # the start message arrives after the cancel: it starts nothing
    result = wfrunner.start_run.apply_async(args=[workflow_id], task_id=run.id)
    result.get(timeout=30)
    doc = client.get_run(run.id)
    assert doc["status"] == "CANCELLED"
    assert all(n["status"] == "SKIPPED" for n in doc["nodes"].values())
    assert not rt.state.meta(run.id)


def test_cancelling_an_unknown_or_ended_run_is_refused(run_workflow: Any) -> None:
    with pytest.raises(NotFoundError):
        wfrunner.cancel_run("no-such-run")
    doc = run_workflow(
        {"nodes": [{"id": "A", "type": "function", "config": {"function_name": "t.increment"}}],
         "edges": []},
        {"x": 1},
    )  # fmt: skip
    with pytest.raises(ConflictError, match="has already ended \\(COMPLETED\\): nothing to"):
        wfrunner.cancel_run(doc["run_id"])
