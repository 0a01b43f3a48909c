"""Map nodes (config.map_over) on a real worker, Redis and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.e2e import map_handlers
from wfrunner.runtime import runtime

ROOT = Path(__file__).resolve().parents[2]


def mapper(name: str, cap: int | None = None, **config: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"function_name": name, "map_over": "input.xs", **config}
    if cap is not None:
        settings["max_concurrency"] = cap
    return {"id": "M", "type": "function", "config": settings}


def around(node: dict[str, Any]) -> dict[str, Any]:
    """start -> M -> end."""
    return {
        "nodes": [
            {"id": "start", "type": "transform", "config": {"expression": "inputs"}},
            node,
            {"id": "end", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "start", "to": "M"}, {"from": "M", "to": "end"}],
    }


def test_at_most_cap_elements_run_at_once_and_results_keep_their_order(
    run_workflow: Any,
) -> None:
    doc = run_workflow(around(mapper("t.map_slow", cap=2, sleep=0.2)), {"xs": [10, 11, 12, 13, 14]})
    assert doc["status"] == "COMPLETED", doc["error"]
    expected = [{"value": 10 + i, "index": i} for i in range(5)]
    assert doc["nodes"]["M"]["output"] == expected
    assert doc["nodes"]["end"]["output"] == expected
    assert doc["nodes"]["M"]["items"] == {"total": 5, "done": 5}
    assert (
        doc.nodes["M"].map_items == {"total": 5, "done": 5} and doc.nodes["end"].map_items is None
    )
    assert doc["nodes"]["M"]["attempts"] == 1
    peak = runtime().redis.get(map_handlers.peak_key(doc["run_id"]))
    assert peak is not None and 1 <= int(peak) <= 2
    # element 0 waited for element 1 to finish: 1 committed first, yet index 0 is first
    events = [e for e in runtime().store.list_events(doc["run_id"]) if e.type == "map_item"]
    order = [e.data["index"] for e in events]
    assert order.index(1) < order.index(0)


def test_an_empty_list_gives_an_empty_list_at_once(run_workflow: Any) -> None:
    doc = run_workflow(around(mapper("t.map_double")), {"xs": []})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["M"]["output"] == []
    assert doc["nodes"]["end"]["output"] == []


def test_a_failing_element_is_retried_under_the_nodes_policy(run_workflow: Any) -> None:
    node = mapper("t.map_flaky", cap=3, fail_on=3)
    node["retry"] = {"max_attempts": 2, "backoff_ms": 10}
    doc = run_workflow(around(node), {"xs": [1, 2, 3, 4]})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["end"]["output"] == [2, 4, 6, 8]


def test_an_element_failing_for_good_fails_the_node_and_the_run(run_workflow: Any) -> None:
    node = mapper("t.map_flaky", cap=2, fail_on=3, always=True)
    node["retry"] = {"max_attempts": 2, "backoff_ms": 10}
    doc = run_workflow(around(node), {"xs": [1, 2, 3, 4]})
    assert doc["status"] == "FAILED"
    assert "node 'M' failed" in doc["error"] and doc["error"].endswith(
        "element 2: ValueError: element 3 failed on attempt 2"
    )
    assert doc["nodes"]["M"]["status"] == "FAILED"
    assert doc["nodes"]["end"]["status"] == "SKIPPED"


def test_a_map_in_a_branch_not_taken_is_skipped(run_workflow: Any) -> None:
    definition = {
        "nodes": [
            {"id": "start", "type": "transform", "config": {"expression": "inputs"}},
            {"id": "pick", "type": "conditional"},
            mapper("t.map_double"),
            {"id": "other", "type": "transform", "config": {"expression": "'other'"}},
        ],
        "edges": [
            {"from": "start", "to": "pick"},
            {"from": "pick", "to": "M", "condition": "output.go"},
            {"from": "pick", "to": "other", "condition": "!output.go"},
        ],
    }
    doc = run_workflow(definition, {"xs": [1, 2], "go": False})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["M"]["status"] == "SKIPPED"
    assert doc["nodes"]["other"]["output"] == "other"
    assert "items" not in doc["nodes"]["M"]


def test_a_thousand_elements(run_workflow: Any) -> None:
    began = time.monotonic()
    doc = run_workflow(
        around(mapper("t.map_double", cap=10)), {"xs": list(range(1000))}, timeout=300
    )
    took = time.monotonic() - began
    print(f"\n1,000-element map (max_concurrency 10): {took:.2f} s end to end")
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["end"]["output"] == [2 * i for i in range(1000)]
    assert doc["nodes"]["M"]["items"] == {"total": 1000, "done": 1000}
    events = runtime().store.list_events(doc["run_id"])
    print(f"events in the run's log: {len(events)}")
    assert len(events) < 1100  # one map_item per element, nothing more per element


def test_the_map_example(run_workflow: Any) -> None:
    definition = json.loads((ROOT / "examples" / "map.json").read_text())
    doc = run_workflow(definition, {"xs": [1, 2, 3]})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["double_each"]["output"] == [{"x": 2}, {"x": 4}, {"x": 6}]
    assert doc["nodes"]["total"]["output"] == 12
