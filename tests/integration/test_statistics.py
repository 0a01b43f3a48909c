"""``stats.nodes_skipped`` counts the nodes the run document shows SKIPPED, in the document
and in the statistics PostgreSQL keeps: nodes a failure cut off (no event of their own)
count, and a node skipped on one loop pass and run on the next does not."""

from __future__ import annotations

from typing import Any

from tests.harness import Harness, hot_keys
from wfrunner import lifecycle
from wfrunner.engine.runstate import GONE
from wfrunner.runtime import Runtime


def transform(node_id: str, expression: str) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"expression": expression}}


def skipped(doc: dict[str, Any]) -> list[str]:
    return sorted(n for n, d in doc["nodes"].items() if d["status"] == "SKIPPED")


def test_nodes_a_failure_cut_off_are_counted(rt: Runtime) -> None:
    h = Harness(rt)
    nodes = [transform("A", "1 / 0"), transform("B", "1"), transform("C", "2")]
    h.start({"nodes": nodes, "edges": [{"from": "A", "to": "B"}, {"from": "B", "to": "C"}]})
    doc = h.drain()
    assert doc["status"] == "FAILED"
    assert skipped(doc) == ["B", "C"]
    assert doc["stats"]["nodes_skipped"] == 2
    assert rt.store.get_stats(h.run_id)["nodes_skipped"] == 2


def test_a_node_skipped_on_one_pass_and_run_on_another_is_not(rt: Runtime) -> None:
    """Pass 1 takes B (C skipped), passes 2 and 3 take C (B skipped): both ran."""
    loop = {
        "id": "L",
        "type": "loop",
        "config": {"max_iterations": 3, "condition": "iteration < 3", "loop_back_to": "A"},
    }
    nodes = [transform("A", "iteration"), transform("B", "1"), transform("C", "2"), loop]
    edges = [
        {"from": "A", "to": "B", "condition": "output == 1"},
        {"from": "A", "to": "C", "condition": "output != 1"},
        {"from": "B", "to": "L"},
        {"from": "C", "to": "L"},
    ]
    nodes.append(transform("after", "1"))
    nodes.append(transform("never", "1"))
    edges += [{"from": "L", "to": "after"}, {"from": "A", "to": "never", "condition": "false"}]
    h = Harness(rt)
    h.start({"nodes": nodes, "edges": edges})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert skipped(doc) == ["never"]
    assert doc["stats"]["nodes_skipped"] == 1
    assert rt.store.get_stats(h.run_id)["nodes_skipped"] == 1


def test_a_check_of_a_run_with_no_hot_state_leaves_no_key(rt: Runtime) -> None:
    """The check is counted only while the run exists: one racing its cleanup (or of a
    run that never was) writes nothing."""
    h = Harness(rt)
    h.start(
        {"nodes": [{"id": "a", "type": "transform", "config": {"expression": "1"}}], "edges": []}
    )
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert doc["stats"]["completion_checks"] >= 1
    assert lifecycle.check_completion(rt, h.run_id) == GONE
    assert hot_keys(rt, h.run_id) == []
