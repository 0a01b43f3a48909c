from __future__ import annotations

from typing import Any

import pytest

import wfrunner
from wfrunner.errors import NotFoundError


def fn(node_id: str, name: str = "t.increment", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def test_sequential(run_workflow: Any) -> None:
    doc = run_workflow(
        {
            "nodes": [fn("A"), fn("B"), fn("C")],
            "edges": [{"from": "A", "to": "B"}, {"from": "B", "to": "C"}],
        },
        {"x": 1},
    )
    assert doc["status"] == "COMPLETED", doc
    assert doc["nodes"]["C"]["output"] == {"x": 4}
    assert doc["path"] == [
        {"from": None, "to": "A"},
        {"from": "A", "to": "B"},
        {"from": "B", "to": "C"},
    ]


def test_start_run_of_an_unknown_workflow_fails_at_once(worker: Any) -> None:
    result = wfrunner.start_run.delay("no-such-workflow", {})
    with pytest.raises(NotFoundError, match="no workflow with id 'no-such-workflow'"):
        result.get(timeout=10)
