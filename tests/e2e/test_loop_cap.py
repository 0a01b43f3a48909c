"""A loop whose condition never turns false fails its run at WFRUNNER_MAX_LOOP_PASSES, on a
real worker, Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from wfrunner import runtime

CAP = 12


@pytest.fixture()
def small_cap(worker: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """WFRUNNER_MAX_LOOP_PASSES read again by the worker's runtime (it is per process)."""
    monkeypatch.setenv("WFRUNNER_MAX_LOOP_PASSES", str(CAP))
    runtime.reset()
    yield
    monkeypatch.undo()
    runtime.reset()


def counting(loop_id: str, condition: str, max_iterations: int) -> dict[str, Any]:
    """``step`` adds one to ``n``; the loop goes back to it while ``condition`` holds."""
    loop = {
        "max_iterations": max_iterations,
        "loop_back_to": "step",
        "condition": condition,
        "break_path": ["done"],
    }
    return {
        "nodes": [
            {"id": "start", "type": "transform", "config": {"expression": "{'n': 0}"}},
            {"id": "step", "type": "transform", "config": {"expression": "{'n': input.n + 1}"}},
            {"id": loop_id, "type": "loop", "config": loop, "retry": {"max_attempts": 3}},
            {"id": "done", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "start", "to": "step"}, {"from": "step", "to": loop_id}],
    }


@pytest.mark.usefixtures("small_cap")
def test_a_loop_that_never_stops_fails_the_run(run_workflow: Any) -> None:
    doc = run_workflow(counting("spin", "true", 1_000_000_000), {})
    assert doc["status"] == "FAILED"
    assert doc["error"] == (
        f"node 'spin' failed: loop 'spin' would go round again, but the path to it has gone "
        f"round loops {CAP} times already, the most a run allows (WFRUNNER_MAX_LOOP_PASSES): "
        "make the loop's condition turn false sooner, lower its max_iterations, or raise "
        "WFRUNNER_MAX_LOOP_PASSES"
    )
    assert doc["nodes"]["spin"]["status"] == "FAILED"
    # one start per pass, the last one included: the cap is no error a retry could fix
    assert doc["nodes"]["spin"]["attempts"] == CAP + 1
    assert doc["nodes"]["step"]["output"] == {"n": CAP + 1}  # the passes it was allowed
    assert doc["nodes"]["done"]["status"] != "COMPLETED"


@pytest.mark.usefixtures("small_cap")
def test_a_loop_within_the_cap_completes(run_workflow: Any) -> None:
    doc = run_workflow(counting("count", f"output.n < {CAP + 1}", 1_000), {})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["done"]["output"] == {"n": CAP + 1}  # CAP loop-backs exactly
