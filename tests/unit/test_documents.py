"""The run document stays the dict it was (indexing, equality, JSON) and is typed too."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime
from typing import Any

from wfrunner.documents import NodeDocument, PathStep, RunDocument, RunStats
from wfrunner.states import NodeStatus, RunStatus

RAW: dict[str, Any] = {
    "run_id": "r1",
    "workflow_id": "w1",
    "status": "FAILED",
    "error": "node 'B' failed: ValueError: disk on fire",
    "inputs": {"x": 1},
    "nodes": {
        "A": {
            "status": "COMPLETED",
            "attempts": 2,
            "iterations": 1,
            "output": {"x": 2},
            "seconds": 0.25,
        },
        "B": {
            "status": "FAILED",
            "attempts": 1,
            "iterations": 0,
            "output": None,
            "seconds": None,
            "error": "ValueError: disk on fire",
            "traceback": "Traceback ...",
        },
    },
    "path": [{"from": None, "to": "A"}, {"from": "A", "to": "B"}],
    "stats": {
        "completion_checks": 1,
        "nodes_executed": 1,
        "nodes_skipped": 0,
        "tokens_emitted": 2,
        "tokens_consumed": 2,
    },
    "created_at": "2026-12-05T22:58:13.544525+00:00",
    "started_at": "2026-12-05T22:58:13.580763+00:00",
    "completed_at": None,
}


def test_it_is_still_the_dict_it_was() -> None:
    doc = RunDocument(copy.deepcopy(RAW))
    assert isinstance(doc, dict)
    assert doc == RAW
    assert doc["status"] == "FAILED"
    assert doc["nodes"]["A"]["output"] == {"x": 2}
    assert json.loads(json.dumps(doc)) == RAW
    assert pickle.loads(pickle.dumps(doc)) == RAW


def test_every_field_is_typed() -> None:
    doc = RunDocument(copy.deepcopy(RAW))
    assert (doc.run_id, doc.workflow_id) == ("r1", "w1")
    assert doc.status is RunStatus.FAILED
    assert doc.error == "node 'B' failed: ValueError: disk on fire"
    assert doc.inputs == {"x": 1}
    assert doc.output is None  # the run did not complete
    assert doc.created_at == datetime(2026, 12, 5, 22, 58, 13, 544525, tzinfo=UTC)
    assert doc.started_at == datetime(2026, 12, 5, 22, 58, 13, 580763, tzinfo=UTC)
    assert doc.completed_at is None
    a, b = doc.nodes["A"], doc.nodes["B"]
    assert isinstance(a, NodeDocument)
    assert (a.status, a.attempts, a.iterations, a.output, a.seconds) == (
        NodeStatus.COMPLETED,
        2,
        1,
        {"x": 2},
        0.25,
    )
    assert (a.error, a.traceback) == (None, None)
    assert (b.status, b.error, b.traceback, b.seconds) == (
        NodeStatus.FAILED,
        "ValueError: disk on fire",
        "Traceback ...",
        None,
    )
    assert all(isinstance(step, PathStep) for step in doc.path)
    assert [(s.from_node, s.to_node) for s in doc.path] == [(None, "A"), ("A", "B")]
    stats = doc.stats
    assert isinstance(stats, RunStats)
    assert (
        stats.completion_checks,
        stats.nodes_executed,
        stats.nodes_skipped,
        stats.tokens_emitted,
        stats.tokens_consumed,
    ) == (1, 1, 0, 2, 2)


def test_a_completed_runs_output_is_that_of_the_node_its_last_token_reached() -> None:
    raw = {**copy.deepcopy(RAW), "status": "COMPLETED", "error": None}
    raw["nodes"]["B"] = {**raw["nodes"]["B"], "status": "COMPLETED", "output": {"y": 3}}
    doc = RunDocument(raw)
    assert doc.output == {"y": 3}


def test_a_live_run_has_no_completion_checks_yet() -> None:
    stats = {k: v for k, v in RAW["stats"].items() if k != "completion_checks"}
    doc = RunDocument({**RAW, "status": "RUNNING", "stats": stats})
    assert doc.stats.completion_checks == 0


def test_to_dict_is_plain_all_the_way_down() -> None:
    plain = RunDocument(copy.deepcopy(RAW)).to_dict()
    assert plain == RAW
    assert type(plain) is dict
    assert type(plain["nodes"]["A"]) is dict
    assert type(plain["path"][0]) is dict
    assert type(plain["stats"]) is dict
