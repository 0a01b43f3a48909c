"""The design's success criteria, each on a real worker, Redis and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.handlers import calls
from wfrunner.runtime import runtime

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows" / "valid"


def fn(
    node_id: str, name: str = "t.increment", node_type: str = "function", **config: Any
) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": {"function_name": name, **config}}


def edges(*pairs: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for pair in pairs:
        edge: dict[str, Any] = {"from": pair[0], "to": pair[1]}
        if len(pair) > 2:
            edge["condition"] = pair[2]
        out.append(edge)
    return out


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {node: info["status"] for node, info in doc["nodes"].items()}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def started(run_id: str, node_id: str) -> int:
    """How often ``node_id`` started in the run's stored event log."""
    events = runtime().store.list_events(run_id)
    return sum(1 for e in events if e.type == "node_started" and e.node_id == node_id)


def test_parallel_fan_out_and_join(run_workflow: Any) -> None:
    definition = fixture("parallel.json")
    # the join lists its inputs, so its output shows it waited for both branches
    definition["nodes"][3] = {
        "id": "D",
        "type": "transform",
        "config": {"expression": "[input.B.x, input.C.x]"},
    }
    doc = run_workflow(definition, {"x": 1})
    assert doc["status"] == "COMPLETED", doc["error"]
    # A = increment(1) = 2; B = increment(A) = 3; C = double(A) = 4
    assert doc["nodes"]["D"]["output"] == [3, 4]
    assert started(doc["run_id"], "D") == 1
    assert doc["nodes"]["D"]["attempts"] == 1
    assert statuses(doc) == dict.fromkeys("ABCD", "COMPLETED")
    assert {(p["from"], p["to"]) for p in doc["path"]} == {
        (None, "A"),
        ("A", "B"),
        ("A", "C"),
        ("B", "D"),
        ("C", "D"),
    }
    assert doc["path"][0] == {"from": None, "to": "A"}


def test_triple_fan_in_runs_the_join_once_with_every_input(run_workflow: Any) -> None:
    doc = run_workflow(fixture("triple_fan_in.json"), {"x": 10})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == 11 + 12 + 13
    assert doc["nodes"]["D"]["attempts"] == 1
    assert doc["nodes"]["D"]["iterations"] == 1


@pytest.mark.parametrize("score, taken, skipped", [(90, "high", "low"), (10, "low", "high")])
def test_branch_then_join_runs_with_live_path_only(
    run_workflow: Any, score: int, taken: str, skipped: str
) -> None:
    doc = run_workflow(fixture("branch_join.json"), {"score": score})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"][taken]["status"] == "COMPLETED"
    assert doc["nodes"][skipped]["status"] == "SKIPPED"
    expected = "premium" if taken == "high" else "basic"
    assert doc["nodes"]["finalize"]["output"] == {"tier": expected}
    assert ("evaluate", skipped) not in {(p["from"], p["to"]) for p in doc["path"]}


@pytest.mark.parametrize("score, taken, dead", [(95, "hi", "lo"), (5, "lo", "hi")])
def test_branch_both_outcomes_end_with_untaken_path_skipped(
    run_workflow: Any, score: int, taken: str, dead: str
) -> None:
    wf = {
        "nodes": [
            {"id": "start", "type": "transform", "config": {"expression": "inputs"}},
            {"id": "route", "type": "conditional"},
            {"id": "hi", "type": "transform", "config": {"expression": "'hi'"}},
            {"id": "lo", "type": "transform", "config": {"expression": "'lo'"}},
            {"id": "after_hi", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": edges(
            ("start", "route"),
            ("route", "hi", "output.score >= 50"),
            ("route", "lo", "output.score < 50"),
            ("hi", "after_hi"),
        ),
    }
    doc = run_workflow(wf, {"score": score})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"][taken]["status"] == "COMPLETED"
    assert doc["nodes"][dead]["status"] == "SKIPPED"
    assert doc["nodes"]["after_hi"]["status"] == ("COMPLETED" if taken == "hi" else "SKIPPED")


def test_loop_breaks_when_condition_turns_false(run_workflow: Any) -> None:
    doc = run_workflow(fixture("loop.json"), {"target": 3})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["step"]["iterations"] == 3
    assert doc["nodes"]["check"]["iterations"] == 3
    assert doc["nodes"]["done"]["output"] == {"n": 3}
    assert doc["nodes"]["gave_up"]["status"] == "SKIPPED"
    loop_backs = [p for p in doc["path"] if p == {"from": "check", "to": "step"}]
    assert len(loop_backs) == 2


def test_loop_exhausting_max_iterations_takes_timeout_path(run_workflow: Any) -> None:
    doc = run_workflow(fixture("loop.json"), {"target": 100})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["check"]["iterations"] == 5  # max_iterations
    assert doc["nodes"]["gave_up"]["status"] == "COMPLETED"
    assert doc["nodes"]["gave_up"]["output"] == {"n": 5}
    assert doc["nodes"]["done"]["status"] == "SKIPPED"


def test_self_loop_with_handler_and_iteration_variable(run_workflow: Any) -> None:
    wf = {
        "nodes": [
            fn("start", "t.echo"),
            {
                "id": "retry",
                "type": "loop",
                "config": {
                    "function_name": "t.poll",
                    "succeed_at": 3,
                    "max_iterations": 5,
                    "condition": "output.status != 'success' && iteration < 10",
                    "break_path": ["ok"],
                    "timeout_path": ["failed"],
                },
            },
            {"id": "ok", "type": "transform", "config": {"expression": "input.attempts"}},
            {"id": "failed", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": edges(("start", "retry")),
    }
    doc = run_workflow(wf, {})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["ok"]["output"] == 3
    assert doc["nodes"]["retry"]["iterations"] == 3


def test_complex_workflow_shape(run_workflow: Any) -> None:
    """The design's complex_workflow: fan-out, a join that branches, aggregate, filter."""
    wf = {
        "nodes": [
            fn("load_config", "t.echo"),
            {
                "id": "fetch_data_source1",
                "type": "transform",
                "config": {"expression": "[{'score': 70}, {'score': 20}]"},
            },
            {
                "id": "fetch_data_source2",
                "type": "transform",
                "config": {"expression": "[{'score': 90}]"},
            },
            {"id": "validate", "type": "conditional", "config": {"function_name": "t.join_count"}},
            {
                "id": "transform_valid",
                "type": "transform",
                "config": {"expression": "ctx.fetch_data_source1 + ctx.fetch_data_source2"},
            },
            fn("handle_invalid", "t.echo"),
            {"id": "aggregate_results", "type": "aggregate", "config": {"strategy": "union"}},
            {
                "id": "filter_results",
                "type": "filter",
                "config": {"filter_expression": "value.score > 50"},
            },
            fn("store_final", "t.echo"),
        ],
        "edges": edges(
            ("load_config", "fetch_data_source1"),
            ("load_config", "fetch_data_source2"),
            ("fetch_data_source1", "validate"),
            ("fetch_data_source2", "validate"),
            ("validate", "transform_valid", "size(output.inputs) == 2"),
            ("validate", "handle_invalid", "size(output.inputs) != 2"),
            ("transform_valid", "aggregate_results"),
            ("aggregate_results", "filter_results"),
            ("filter_results", "store_final"),
        ),
    }
    doc = run_workflow(wf, {})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["validate"]["output"] == {
        "inputs": ["fetch_data_source1", "fetch_data_source2"]
    }
    assert doc["nodes"]["handle_invalid"]["status"] == "SKIPPED"
    assert doc["nodes"]["store_final"]["output"] == [{"score": 70}, {"score": 90}]


def test_failing_handler_fails_the_run_naming_node_and_exception(run_workflow: Any) -> None:
    wf = {
        "nodes": [fn("A"), fn("B", "t.boom", message="disk on fire"), fn("C"), fn("D")],
        "edges": edges(("A", "B"), ("B", "C"), ("A", "D")),
    }
    doc = run_workflow(wf, {"x": 0})
    assert doc["status"] == "FAILED"
    assert doc["error"] == "node 'B' failed: ValueError: disk on fire"
    assert doc["nodes"]["B"]["status"] == "FAILED"
    assert doc["nodes"]["C"]["status"] == "SKIPPED"  # never ran, and no node is left PENDING
    assert all(info["status"] != "PENDING" for info in doc["nodes"].values())


def test_unknown_handler_fails_the_node_with_a_clear_message(run_workflow: Any) -> None:
    doc = run_workflow({"nodes": [fn("A", "t.missing")], "edges": []}, {})
    assert doc["status"] == "FAILED"
    assert "node 'A' failed: no handler registered under 't.missing'" in doc["error"]


def test_cel_runtime_error_fails_the_node_naming_the_expression(run_workflow: Any) -> None:
    wf = {
        "nodes": [fn("A", "t.echo"), fn("B", "t.echo")],
        "edges": edges(("A", "B", "output.missing > 1")),
    }
    doc = run_workflow(wf, {"present": 1})
    assert doc["status"] == "FAILED"
    assert "node 'A' failed" in doc["error"] and "'output.missing > 1'" in doc["error"]


def test_join_runs_exactly_once_per_run(run_workflow: Any) -> None:
    before = calls["t.join_count:once"]
    wf = {
        "nodes": [
            fn("A", "t.echo"),
            fn("B", "t.echo"),
            fn("C", "t.echo"),
            fn("J", "t.join_count", tag="once"),
        ],
        "edges": edges(("A", "B"), ("A", "C"), ("A", "J"), ("B", "J"), ("C", "J")),
    }
    doc = run_workflow(wf, {})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert calls["t.join_count:once"] - before == 1
    assert doc["nodes"]["J"]["output"] == {"inputs": ["A", "B", "C"]}
