"""Paths a branch does not take, on the real Redis and PostgreSQL (tests/harness.py): the
nodes only they reach are skipped, and a join after the branch runs with its live inputs
instead of waiting for the dead one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import Harness
from wfrunner.runtime import Runtime


def branch_then_join(deep: bool) -> dict[str, Any]:
    """A → (B if input.x > 0 | C otherwise) → D (a join); with ``deep``, C → C2 → D, so
    the dead path crosses a plain node before it reaches the join."""
    nodes = [
        {"id": "A", "type": "transform", "config": {"expression": "[input.x]"}},
        {"id": "B", "type": "transform", "config": {"expression": "input + [1]"}},
        {"id": "C", "type": "transform", "config": {"expression": "input + [2]"}},
        {"id": "D", "type": "aggregate", "config": {"strategy": "concat"}},
    ]
    edges = [
        {"from": "A", "to": "B", "condition": "output[0] > 0"},
        {"from": "A", "to": "C", "condition": "!(output[0] > 0)"},
        {"from": "B", "to": "D"},
    ]
    if deep:
        nodes.append({"id": "C2", "type": "transform", "config": {"expression": "input"}})
        edges += [{"from": "C", "to": "C2"}, {"from": "C2", "to": "D"}]
    else:
        edges.append({"from": "C", "to": "D"})
    return {"nodes": nodes, "edges": edges}


@pytest.mark.parametrize("deep", [False, True], ids=["next-to-join", "two-hops-from-join"])
def test_a_join_after_a_branch_runs_once_with_its_live_input(rt: Runtime, deep: bool) -> None:
    h = Harness(rt)
    h.start(branch_then_join(deep), {"x": 5})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    nodes = doc["nodes"]
    assert nodes["D"]["status"] == "COMPLETED"
    assert nodes["D"]["iterations"] == 1
    assert nodes["D"]["output"] == [5, 1]
    dead = ["C", "C2"] if deep else ["C"]
    assert {n: nodes[n]["status"] for n in dead} == dict.fromkeys(dead, "SKIPPED")
    assert doc["stats"]["nodes_skipped"] == len(dead)


def test_a_join_whose_inputs_are_all_dead_is_skipped_and_the_run_completes(rt: Runtime) -> None:
    """A → (B | C) → D, and neither condition holds: D is skipped, E after it too."""
    definition = branch_then_join(False)
    definition["edges"][0]["condition"] = "output[0] > 100"
    definition["edges"][1]["condition"] = "output[0] < -100"
    definition["nodes"].append({"id": "E", "type": "transform", "config": {"expression": "1"}})
    definition["edges"].append({"from": "D", "to": "E"})
    h = Harness(rt)
    h.start(definition, {"x": 5})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert {n: d["status"] for n, d in doc["nodes"].items()} == {
        "A": "COMPLETED",
        "B": "SKIPPED",
        "C": "SKIPPED",
        "D": "SKIPPED",
        "E": "SKIPPED",
    }
