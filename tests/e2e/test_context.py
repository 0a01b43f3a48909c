"""Handlers that declare a third parameter get a NodeContext, on the in-process worker."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

import pytest

import wfrunner
from wfrunner import runtime
from wfrunner.context import NodeContext
from wfrunner.engine import keys

#: what each context handler saw, by run id: one entry per call
seen: dict[str, list[dict[str, Any]]] = {}
_lock = threading.Lock()


def _record(ctx: NodeContext, **more: Any) -> None:
    with _lock:
        seen.setdefault(ctx.run_id, []).append(
            {
                "run_id": ctx.run_id,
                "workflow_id": ctx.workflow_id,
                "node_id": ctx.node_id,
                "attempt": ctx.attempt,
                "iteration": ctx.iteration,
                "key": ctx.idempotency_key,
                **more,
            }
        )


@wfrunner.handler("ctx.record")
def record(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    _record(ctx)
    ctx.logger.info("recorded %s", ctx.node_id)
    return value


@wfrunner.handler("ctx.flaky")
def flaky(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    """Fails its first attempt: the retry is the same token, delivered again."""
    _record(ctx)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return value


@wfrunner.handler("ctx.poll")
def poll(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    _record(ctx)
    return {"passes": ctx.iteration}


def _lease_until(run_id: str) -> float:
    entries = list(runtime.runtime().redis.hvals(keys.running_key(run_id)))
    return float(str(entries[0]).split("|")[0])


@wfrunner.handler("ctx.heartbeat")
def heartbeat(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    """A long node that renews its lease itself, between steps of its work."""
    untils = [_lease_until(ctx.run_id)]
    beats = []
    for _ in range(int(config["steps"])):
        time.sleep(0.05)  # Redis's clock moves past the last renewal
        beats.append(ctx.heartbeat())
        untils.append(_lease_until(ctx.run_id))
        time.sleep(float(config["pause"]))
    return {"untils": untils, "beats": beats}


def _one(node_id: str, name: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def test_a_three_parameter_handler_gets_its_run_node_and_attempt(
    run_workflow: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wf = {
        "nodes": [_one("A", "t.echo"), _one("B", "ctx.record")],
        "edges": [{"from": "A", "to": "B"}],
    }
    with caplog.at_level(logging.INFO, logger="wfrunner.handler"):
        doc = run_workflow(wf, {"x": 1})
    assert doc.status == "COMPLETED", doc.error
    assert doc.nodes["B"].output == {"x": 1}
    [call] = seen[doc.run_id]
    assert call == {
        "run_id": doc.run_id,
        "workflow_id": doc.workflow_id,
        "node_id": "B",
        "attempt": 1,
        "iteration": 1,
        "key": call["key"],
    }
    [line] = [r for r in caplog.records if r.name == "wfrunner.handler.ctx.record"]
    assert line.getMessage() == f"run {doc.run_id} node B attempt 1: recorded B"
    assert (line.run_id, line.node_id, line.attempt) == (doc.run_id, "B", 1)  # type: ignore[attr-defined]


def test_a_retried_attempt_keeps_the_idempotency_key(run_workflow: Any) -> None:
    node = _one("A", "ctx.flaky")
    node["retry"] = {"max_attempts": 3, "backoff_ms": 50}
    doc = run_workflow({"nodes": [node], "edges": []}, {})
    assert doc.status == "COMPLETED", doc.error
    calls = seen[doc.run_id]
    assert [c["attempt"] for c in calls] == [1, 2]
    assert calls[0]["key"] == calls[1]["key"]
    assert doc.nodes["A"].attempts == 2


def test_each_loop_pass_has_its_iteration_and_its_own_key(run_workflow: Any) -> None:
    wf = {
        "nodes": [
            _one("start", "t.echo"),
            {
                "id": "poll",
                "type": "loop",
                "config": {
                    "function_name": "ctx.poll",
                    "max_iterations": 5,
                    "condition": "output.passes < 3",
                    "break_path": ["done"],
                    "timeout_path": ["gave_up"],
                },
            },
            {"id": "done", "type": "transform", "config": {"expression": "input"}},
            {"id": "gave_up", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "start", "to": "poll"}],
    }
    doc = run_workflow(wf, {})
    assert doc.status == "COMPLETED", doc.error
    assert doc.output == {"passes": 3}
    calls = seen[doc.run_id]
    assert [c["iteration"] for c in calls] == [1, 2, 3]
    assert [c["attempt"] for c in calls] == [1, 1, 1]
    assert len({c["key"] for c in calls}) == 3


def test_heartbeat_extends_the_lease_of_a_long_node_at_once(run_workflow: Any) -> None:
    """Each heartbeat (one per step, spaced past its throttle) moves the lease's expiry
    on at once, without waiting for the worker's heartbeat thread, which renews every
    third of the lease and so not once during these steps."""
    settings = runtime.runtime().settings
    pause = settings.lease_seconds / 15  # the heartbeat's throttle interval
    steps = 3
    assert steps * pause < settings.lease_seconds / 3
    wf = {"nodes": [_one("A", "ctx.heartbeat", steps=steps, pause=pause)], "edges": []}
    doc = run_workflow(wf, {})
    assert doc.status == "COMPLETED", doc.error
    out = doc.nodes["A"].output
    assert out["beats"] == [True] * steps
    untils = out["untils"]
    assert all(later > earlier for earlier, later in itertools.pairwise(untils))


#: gates the cancelled-run test opens, and what the handler's heartbeat said after it
cancel_gates: dict[str, threading.Event] = {}
after_cancel: dict[str, bool] = {}


@wfrunner.handler("ctx.outlive")
def outlive(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    """Works until the test lets it go, then asks whether its lease is still held (its
    first heartbeat: a later one within the throttle would answer what this one did)."""
    cancel_gates.setdefault(ctx.run_id, threading.Event()).wait(30)
    after_cancel[ctx.run_id] = ctx.heartbeat()
    return value


def test_heartbeat_tells_a_handler_its_run_was_cancelled(worker: Any) -> None:
    from wfrunner import client, lifecycle

    workflow_id = client.register_workflow({"nodes": [_one("A", "ctx.outlive")], "edges": []})
    run_id = client.submit_run(workflow_id, {})
    rt = runtime.runtime()
    deadline = time.monotonic() + 20
    while not rt.state.leases(run_id) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the node runs
    assert lifecycle.fail(rt, run_id, "cancelled by the test", kind="cancelled")
    cancel_gates.setdefault(run_id, threading.Event()).set()
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc.status is wfrunner.RunStatus.CANCELLED
    deadline = time.monotonic() + 20
    while run_id not in after_cancel and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after_cancel[run_id] is False
