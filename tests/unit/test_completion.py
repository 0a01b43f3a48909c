"""Fast tests of the completion check's pure decision (``wfrunner.engine.completion``):
when a run whose counter reached 0 has completed, when a join left waiting fails it, and
that a check records nothing for a run still running or already ended.

No Redis: each test hands :func:`decide` the hot state a check would have read.
"""

from __future__ import annotations

import pytest

from wfrunner.compiler import compile_workflow
from wfrunner.compiler.ir import IR
from wfrunner.engine.completion import NOT_DONE, decide
from wfrunner.engine.runstate import GONE, CompletionView


def diamond() -> IR:
    nodes = [{"id": n, "type": "transform", "config": {"expression": "1"}} for n in "ABCD"]
    edges = [{"from": a, "to": b} for a, b in (("A", "B"), ("A", "C"), ("B", "D"), ("C", "D"))]
    return compile_workflow({"metadata": {"name": "d"}, "nodes": nodes, "edges": edges})


def view(counter: int | None, joins: dict[str, int] | None = None, state: str = "running"):
    return CompletionView(meta={"state": state}, counter=counter, joins=joins or {})


def test_a_run_with_tokens_in_flight_is_not_done_and_nothing_is_recorded() -> None:
    assert decide(diamond(), view(1, {"D|": 1})) == (NOT_DONE, None)


def test_a_run_whose_counter_is_gone_is_not_declared_done() -> None:
    assert decide(diamond(), view(None)) == (NOT_DONE, None)


def test_a_zero_counter_with_every_join_complete_completes_the_run() -> None:
    verdict, end = decide(diamond(), view(0, {"D|": 2}))
    assert verdict == "completed"
    assert end is not None
    state, error, events = end
    assert (state, error) == ("completed", None)
    assert [e["type"] for e in events] == ["run_completed"]


def test_a_pending_approval_keeps_a_run_with_a_zero_counter_running() -> None:
    waiting = CompletionView(meta={"state": "running", "waiting": "1"}, counter=0, joins={"D|": 2})
    assert decide(diamond(), waiting) == (NOT_DONE, None)


def test_a_zero_counter_with_a_join_left_waiting_fails_the_run_naming_the_join() -> None:
    verdict, end = decide(diamond(), view(0, {"D|": 1}))
    assert verdict == "failed"
    assert end is not None
    state, error, events = end
    assert state == "failed"
    assert error is not None and "join 'D'" in error
    assert [e["type"] for e in events] == ["run_failed"]


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_an_ended_run_keeps_its_end_and_the_check_records_none(state: str) -> None:
    assert decide(diamond(), view(0, {"D|": 1}, state=state)) == (state, None)


def test_a_run_without_hot_state_is_gone() -> None:
    assert decide(diamond(), CompletionView(meta={}, counter=None, joins={})) == (GONE, None)
