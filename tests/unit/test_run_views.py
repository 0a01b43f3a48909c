"""What ``wfrunner status`` shows, computed without servers: node times from the events,
nodes in workflow order."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from wfrunner import history
from wfrunner.cli.show import workflow_order
from wfrunner.compiler import compile_workflow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workflows" / "valid"


def evt(kind: str, node: str, t: float, scope: str = "") -> dict[str, Any]:
    return {"type": kind, "node": node, "t": t, "scope": scope}


def seconds(events: list[dict[str, Any]]) -> dict[str, float | None]:
    nodes = history.progress(["a", "b", "c"], events)
    docs = history.node_documents(nodes, True, lambda refs: [None] * len(refs))
    return {node: doc["seconds"] for node, doc in docs.items()}


def test_node_time_sums_its_attempts_and_passes() -> None:
    events = [
        evt("node_started", "a", 10.0),
        evt("node_retrying", "a", 12.0),  # the first attempt ran 2 s
        evt("node_started", "a", 20.0),
        evt("node_completed", "a", 21.0),  # the retry 1 s
        evt("node_started", "b", 30.0),
        evt("node_started", "b", 30.5, scope="b=2"),  # a loop's passes overlap by scope
        evt("node_completed", "b", 31.0),
        evt("node_failed", "b", 34.5, scope="b=2"),
        evt("node_skipped", "c", 40.0),
    ]
    assert seconds(events) == {"a": 3.0, "b": 5.0, "c": None}


def test_an_attempt_never_ended_has_no_time() -> None:
    assert seconds([evt("node_started", "a", 1.0)])["a"] is None


def load(name: str) -> Any:
    return compile_workflow(json.loads((FIXTURES / name).read_text()), name)


def test_workflow_order_puts_every_node_after_its_predecessors() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        ir = load(path.name)
        order = workflow_order(ir)
        assert sorted(order) == sorted(ir.nodes), path.name
        for node in ir.nodes.values():
            for nxt in node.successors:
                assert order.index(node.id) < order.index(nxt), (path.name, node.id, nxt)


def test_workflow_order_keeps_the_definitions_order_of_ties() -> None:
    definition = {
        "nodes": [
            {"id": "first_entry", "type": "transform", "config": {"expression": "{'n': 0}"}},
            {"id": "second", "type": "transform", "config": {"expression": "{'n': 1}"}},
            {"id": "left_branch", "type": "transform", "config": {"expression": "input"}},
            {"id": "right", "type": "transform", "config": {"expression": "input"}},
            {"id": "join", "type": "aggregate", "config": {"strategy": "merge"}},
        ],
        "edges": [
            {"from": "first_entry", "to": "left_branch"},
            {"from": "first_entry", "to": "right"},
            {"from": "second", "to": "join"},
            {"from": "left_branch", "to": "join"},
            {"from": "right", "to": "join"},
        ],
    }
    listed = [n["id"] for n in definition["nodes"]]
    ir = compile_workflow(definition)
    # as PostgreSQL's JSONB gives the IR back: keys shortest first
    stored = replace(ir, nodes=dict(sorted(ir.nodes.items(), key=lambda kv: len(kv[0]))))
    assert workflow_order(stored, listed) == listed
    assert workflow_order(stored)[:2] == ["second", "first_entry"]


def test_a_human_node_waits_until_decided_and_a_cancel_fails_what_it_cut_short() -> None:
    from wfrunner.states import NodeStatus, RunStatus

    def status(events: list[dict[str, Any]], ended: bool = False) -> dict[str, NodeStatus]:
        return {n: p.status(ended) for n, p in history.progress(["a", "b"], events).items()}

    asked = [evt("node_started", "a", 1.0), evt("approval_requested", "a", 1.0)]
    assert status(asked) == {"a": NodeStatus.WAITING, "b": NodeStatus.PENDING}
    nodes = history.progress(["a", "b"], asked)
    assert history.live_status(RunStatus.RUNNING, nodes) is RunStatus.WAITING
    decided = [*asked, evt("approval_decided", "a", 2.0)]
    assert status(decided)["a"] is NodeStatus.RUNNING  # until its delivery commits
    assert history.live_status(RunStatus.WAITING, history.progress(["a"], decided)) is (
        RunStatus.RUNNING
    )
    cut = [*asked, {**evt("node_cancelled", "a", 3.0), "error": "cancelled while waiting"}]
    assert status(cut, ended=True) == {"a": NodeStatus.FAILED, "b": NodeStatus.SKIPPED}
    docs = history.node_documents(history.progress(["a"], cut), True, lambda r: [None] * len(r))
    assert docs["a"]["error"] == "cancelled while waiting"
    assert docs["a"]["seconds"] == 2.0
