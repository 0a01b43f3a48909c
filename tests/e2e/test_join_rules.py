"""Join rules (docs/dsl.md, "Join rules") on a real worker, Redis and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import wfrunner
from tests.e2e.handlers import calls, gates
from wfrunner import client
from wfrunner.runtime import runtime


def fn(node_id: str, name: str = "t.increment", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def race(join: Any, gate: str, tag: str, slow_live: bool = True) -> dict[str, Any]:
    """A -> FAST, MID, SLOW (blocked on ``gate``) -> J -> K (counts its runs under tag)."""
    slow_edge: dict[str, Any] = {"from": "A", "to": "SLOW"}
    if not slow_live:
        slow_edge["condition"] = "false"
    return {
        "nodes": [
            fn("A"),
            fn("FAST", by=1),
            fn("MID", by=2),
            fn("SLOW", "t.wait", gate=gate),
            {**fn("J", "t.echo"), "join": join},
            fn("K", "t.count", tag=tag),
        ],
        "edges": [
            {"from": "A", "to": "FAST"},
            {"from": "A", "to": "MID"},
            slow_edge,
            {"from": "FAST", "to": "J"},
            {"from": "MID", "to": "J"},
            {"from": "SLOW", "to": "J"},
            {"from": "J", "to": "K"},
        ],
    }


def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def start(definition: dict[str, Any]) -> str:
    workflow_id = client.register_workflow(definition)
    return str(wfrunner.start_run.delay(workflow_id, {"x": 0}).get(timeout=30))


def test_any_fires_while_the_slow_branch_still_runs(worker: Any) -> None:
    gate, tag = "join-any", "after-any"
    gates[gate] = threading.Event()
    run_id = start(race("any", gate, tag))
    # K runs while SLOW is still blocked: the join did not wait for it
    wait_until(lambda: calls[f"t.count:{tag}"] == 1)
    doc = client.get_run(run_id)
    assert doc["status"] == "RUNNING"
    assert doc["nodes"]["K"]["status"] == "COMPLETED"
    assert doc["nodes"]["SLOW"]["status"] == "RUNNING"
    assert len(doc["nodes"]["J"]["output"]) == 1  # one input: the first live arrival
    gates[gate].set()
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert calls[f"t.count:{tag}"] == 1  # SLOW's late arrival fired nothing
    assert doc["nodes"]["J"]["attempts"] == 1 and doc["nodes"]["K"]["attempts"] == 1
    assert doc["nodes"]["SLOW"]["status"] == "COMPLETED"


def test_at_least_two_of_three(worker: Any) -> None:
    gate, tag = "join-two", "after-two"
    gates[gate] = threading.Event()
    run_id = start(race({"at_least": 2}, gate, tag))
    wait_until(lambda: calls[f"t.count:{tag}"] == 1)
    doc = client.get_run(run_id)
    assert doc["nodes"]["J"]["output"] == {"FAST": {"x": 2}, "MID": {"x": 3}}
    gates[gate].set()
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert calls[f"t.count:{tag}"] == 1
    assert doc["nodes"]["J"]["output"] == {"FAST": {"x": 2}, "MID": {"x": 3}}


def test_a_condition_over_the_arrived_outputs(worker: Any) -> None:
    gate, tag = "join-cel", "after-cel"
    gates[gate] = threading.Event()
    # MID's output has x == 3: the join fires once MID is in, whatever else arrived
    run_id = start(race({"condition": "has(arrived.MID) && arrived.MID.x == 3"}, gate, tag))
    wait_until(lambda: calls[f"t.count:{tag}"] == 1)
    doc = client.get_run(run_id)
    assert "MID" in doc["nodes"]["J"]["output"]
    assert "SLOW" not in doc["nodes"]["J"]["output"]
    gates[gate].set()
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert calls[f"t.count:{tag}"] == 1


def test_a_rule_that_never_holds_skips_the_join_and_the_run_completes(worker: Any) -> None:
    tag = "after-never"
    definition = race({"at_least": 3}, "join-never", tag, slow_live=False)
    definition["nodes"].append(fn("OTHER"))
    definition["edges"].append({"from": "A", "to": "OTHER"})
    run_id = start(definition)
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["status"] == "SKIPPED"
    assert doc["nodes"]["J"]["reason"].startswith("join rule at_least 3 never held")
    assert doc["nodes"]["K"]["status"] == "SKIPPED"
    assert doc["nodes"]["OTHER"]["status"] == "COMPLETED"
    assert calls[f"t.count:{tag}"] == 0


def test_cancel_cuts_the_slow_branch_and_the_run_does_not_wait(worker: Any) -> None:
    gate, tag, fast = "join-cancel", "after-cancel", "join-cancel-fast"
    gates[gate] = threading.Event()
    gates[fast] = threading.Event()
    definition = {
        "nodes": [
            fn("A"),
            fn("FAST", "t.wait", gate=fast),
            fn("SLOW", "t.wait", gate=gate),
            fn("SLOW2", "t.count", tag=f"{tag}-slow2"),
            {**fn("J", "t.echo"), "join": "any", "join_rest": "cancel"},
            fn("K", "t.count", tag=tag),
        ],
        "edges": [
            {"from": "A", "to": "FAST"},
            {"from": "A", "to": "SLOW"},
            {"from": "SLOW", "to": "SLOW2"},
            {"from": "FAST", "to": "J"},
            {"from": "SLOW2", "to": "J"},
            {"from": "J", "to": "K"},
        ],
    }
    run_id = start(definition)
    try:
        wait_until(lambda: calls[f"t.wait:{gate}"] == 1)  # SLOW runs (and blocks)
        gates[fast].set()  # FAST returns: J fires and cuts SLOW short
        # SLOW is still blocked, and the run completes: it did not wait for it
        doc = client.wait_for_run(run_id, timeout=30)
        assert doc["status"] == "COMPLETED", doc["error"]
        assert calls[f"t.wait:{gate}"] == 1
        assert doc["nodes"]["SLOW"]["status"] == "SKIPPED"
        assert doc["nodes"]["SLOW"]["reason"] == "cut short: join 'J' fired (join_rest cancel)"
        assert doc["nodes"]["SLOW2"]["status"] == "SKIPPED"
        assert doc["nodes"]["J"]["output"] == {"FAST": {"x": 1}}
        assert calls[f"t.count:{tag}"] == 1
        events = runtime().store.list_events(run_id)
        cut = [(e.node_id, e.data.get("was")) for e in events if e.data.get("cut")]
        assert cut == [("SLOW", "running")]
    finally:
        gates[gate].set()  # SLOW's handler returns: its commit is refused
    time.sleep(1)
    assert calls[f"t.count:{tag}-slow2"] == 0
    assert client.get_run(run_id)["nodes"]["SLOW"]["status"] == "SKIPPED"
