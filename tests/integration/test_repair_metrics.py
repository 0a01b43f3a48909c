"""The counters of what went wrong and was repaired, driven by tests/harness.py on the real
Redis and PostgreSQL: reconciler repairs by kind, dead letters, retried executions and
redeliveries (a token begun again), read from this process's registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from tests.harness import Harness, redis_seen_as
from wfrunner import handlers, telemetry
from wfrunner.engine import keys
from wfrunner.runtime import Runtime


@handlers.handler("metrics.always_fails")
def always_fails(value: Any, config: dict[str, Any]) -> Any:
    raise RuntimeError("transient failure")


def chain(n: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "type": "transform", "config": {"expression": f"{i}"}} for i in range(n)
    ]
    return {"nodes": nodes, "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_reconciler_repairs_by_kind(rt: Runtime) -> None:
    rebuilt = sample("wfrunner_reconciler_repairs_total", kind="rebuilt")
    republished = sample("wfrunner_reconciler_repairs_total", kind="republished")
    h = Harness(rt)
    h.start(chain(3), {})
    token = h.queue.popleft()
    h.act(token, h.process(token), publish=False)  # died between commit and publish
    rt.redis.hset(keys.meta_key(h.run_id), "activity", 0)
    h.reconcile()
    assert sample("wfrunner_reconciler_repairs_total", kind="republished") == republished + 1
    assert sample("wfrunner_reconciler_repairs_total", kind="rebuilt") == rebuilt
    rt.redis.delete(*keys.run_keys(h.run_id))  # Redis restarted, lost the run
    redis_seen_as(rt, None)
    h.queue.clear()
    h.reconcile()
    assert sample("wfrunner_reconciler_repairs_total", kind="rebuilt") == rebuilt + 1
    assert h.drain()["status"] == "COMPLETED"


def test_retries_redeliveries_and_dead_letters(rt: Runtime) -> None:
    wf: dict[str, Any] = {
        "metadata": {"name": "repair_metrics"},
        "nodes": [
            {
                "id": "F",
                "type": "function",
                "retry": {"max_attempts": 2, "backoff_ms": 1},
                "config": {"function_name": "metrics.always_fails"},
            }
        ],
        "edges": [],
    }
    labels = {"workflow": "repair_metrics", "node": "F"}
    letters = sample("wfrunner_dead_letters_total", kind="node")
    h = Harness(rt)
    h.start(wf, {})
    while h.queue:  # as a task does: each delivery reported once processed
        token = h.queue.popleft()
        outcome = h.process(token)
        telemetry.node_done(rt, h.workflow_id, token, outcome, 0.01)
        h.act(token, outcome)
    assert sample("wfrunner_node_executions_total", **labels, outcome="retried") == 1
    assert sample("wfrunner_node_executions_total", **labels, outcome="failed") == 1
    assert sample("wfrunner_redeliveries_total", **labels) == 1  # attempt 2
    assert sample("wfrunner_node_duration_seconds_count", **labels) == 2
    assert sample("wfrunner_runs_ended_total", workflow="repair_metrics", status="failed") == 1
    assert sample("wfrunner_dead_letters_total", kind="node") == letters + 1
