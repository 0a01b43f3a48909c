"""Pure decisions of failure handling and sub-workflows: where a caught failure goes,
what the compiler accepts as on_error, and how a child run's outcome reads."""

from __future__ import annotations

from typing import Any

import pytest

from wfrunner import failure_handler, history, subflows
from wfrunner.compiler import compile_workflow
from wfrunner.compiler.ir import IR
from wfrunner.engine import subflow
from wfrunner.engine.routing import Route, dead_successors, decide, decide_failure
from wfrunner.engine.tokens import Token
from wfrunner.errors import CompileError


def fn(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": "h"}, **extra}


def flow(*nodes: dict[str, Any], edges: list[tuple[str, str]]) -> IR:
    return compile_workflow(
        {"nodes": list(nodes), "edges": [{"from": a, "to": b} for a, b in edges]}
    )


def caught() -> IR:
    """A -> X -> B -> J; X on_error H -> J; A -> C -> J."""
    return flow(
        fn("A"),
        fn("X", on_error="H"),
        fn("B"),
        fn("C"),
        fn("H"),
        {"id": "J", "type": "aggregate", "config": {"strategy": "merge"}},
        edges=[("A", "X"), ("X", "B"), ("B", "J"), ("H", "J"), ("A", "C"), ("C", "J")],
    )


def test_on_error_is_a_possible_successor_and_makes_its_target_a_join() -> None:
    ir = caught()
    assert ir.nodes["X"].on_error == "H"
    assert ir.nodes["X"].successors == ("B", "H")
    assert ir.nodes["H"].dependencies == ("X",)
    assert ir.nodes["J"].wait_for_all and set(ir.nodes["J"].dependencies) == {"B", "H", "C"}
    assert "H" not in ir.entry_nodes
    assert IR.from_dict(ir.to_dict()) == ir


def test_on_success_the_on_error_path_is_dead() -> None:
    decision = decide(caught().nodes["X"], "", {"output": 1})
    assert decision.live == (Route("B", ""),)
    assert decision.dead == (Route("H", ""),)


def test_on_failure_only_the_on_error_path_is_live() -> None:
    decision = decide_failure(caught().nodes["X"], "", passes=2)
    assert decision.live == (Route("H", "", 2),)
    assert decision.dead == (Route("B", "", 2),)


def test_a_skipped_node_kills_its_on_error_path_too() -> None:
    assert dead_successors(caught().nodes["X"], "") == (Route("B", ""), Route("H", ""))


def test_a_loop_nodes_failure_leaves_the_loop() -> None:
    ir = flow(
        fn("A"),
        {
            "id": "L",
            "type": "loop",
            "config": {
                "function_name": "h",
                "max_iterations": 3,
                "condition": "false",
                "loop_back_to": "A",
            },
            "on_error": "H",
        },
        fn("E"),
        fn("H"),
        edges=[("A", "L"), ("L", "E")],
    )
    loop = ir.nodes["L"]
    failed = decide_failure(loop, "L=2")
    assert failed.live == (Route("H", ""),) and failed.dead == (Route("E", ""),)
    broke = decide(loop, "L=2", {"output": 1})
    assert broke.live == (Route("E", ""),) and broke.dead == (Route("H", ""),)
    assert dead_successors(loop, "L=1") == (Route("E", ""), Route("H", ""))


@pytest.mark.parametrize(
    ("on_error", "problem"),
    [
        ("X", "node 'X': on_error names the node itself"),
        ("ghost", "node 'X': on_error names unknown node 'ghost'"),
        ("B", "node 'X': on_error 'B' is also where the node goes on success"),
    ],
)
def test_the_compiler_refuses_a_bad_on_error(on_error: str, problem: str) -> None:
    with pytest.raises(CompileError) as refused:
        flow(fn("X", on_error=on_error), fn("B"), edges=[("X", "B")])
    assert any(p.startswith(problem) for p in refused.value.problems), refused.value.problems


def test_on_error_making_a_cycle_is_refused() -> None:
    with pytest.raises(CompileError) as refused:
        flow(fn("A"), fn("X", on_error="A"), edges=[("A", "X")])
    assert any(p.startswith("cycle A -> X -> A") for p in refused.value.problems)


def test_on_failure_names_a_handler() -> None:
    doc = {"nodes": [fn("A")], "edges": [], "on_failure": {"function_name": "ops.page"}}
    assert compile_workflow(doc).on_failure == "ops.page"
    assert IR.from_dict(compile_workflow(doc).to_dict()).on_failure == "ops.page"
    with pytest.raises(CompileError) as unknown:
        compile_workflow(doc, handlers={"h"})
    assert any(p.startswith("on_failure: no handler registered") for p in unknown.value.problems)
    with pytest.raises(CompileError):
        compile_workflow({**doc, "on_failure": {"function_name": 3}})


def test_the_failed_node_is_the_last_uncaught_failure() -> None:
    events = [
        {"type": "node_failed", "node": "X", "caught": True},
        {"type": "node_failed", "node": "Y"},
        {"type": "run_failed", "node": None},
    ]
    assert failure_handler.failed_node(events) == "Y"
    assert failure_handler.failed_node(events[:1]) is None


def test_a_child_run_id_is_the_same_for_every_delivery_of_a_token() -> None:
    token = Token("run-1", "A", "S", "ref", 1, 1, "", 0)
    again = Token.from_dict(token.to_dict())
    assert subflow.child_run_id(token) == subflow.child_run_id(again)
    other = Token("run-1", "A", "S", "ref", 1, 2, "L=2", 0)
    assert subflow.child_run_id(other) != subflow.child_run_id(token)
    outcome = {"child_run_id": "c1", "status": "FAILED", "error": "node 'A' failed: boom"}
    assert subflow.failure(outcome) == "child run c1 failed: node 'A' failed: boom"


def test_a_childs_output_is_its_completed_terminal_nodes() -> None:
    ir = flow(
        fn("A"),
        fn("B"),
        fn("C"),
        edges=[("A", "B"), ("A", "C")],
    )
    events = [
        {"type": "node_started", "node": "A"},
        {"type": "node_completed", "node": "A", "output_ref": "r1"},
        {"type": "node_started", "node": "B"},
        {"type": "node_completed", "node": "B", "output_ref": "r2"},
        {"type": "node_skipped", "node": "C"},
    ]
    assert subflows.child_output(ir, events, {"r1": 1, "r2": {"b": 2}}) == {"B": {"b": 2}}


def test_the_document_shows_a_caught_failure_and_a_child_run() -> None:
    events = [
        {"type": "node_started", "node": "X"},
        {"type": "node_failed", "node": "X", "error": "e", "caught": True},
        {"type": "node_started", "node": "S"},
        {"type": "child_started", "node": "S", "child_run_id": "c1"},
    ]
    nodes = history.node_documents(history.progress(["X", "S"], events), False, lambda r: [])
    assert nodes["X"]["status"] == "FAILED" and nodes["X"]["caught"] is True
    assert nodes["S"]["status"] == "RUNNING" and nodes["S"]["child_run_id"] == "c1"
    assert (
        history.dead_letters(
            [{**events[1], "token": Token("r", None, "X", None, 0, 1, "", 0).to_dict()}]
        )
        == []
    )


def test_a_graph_draws_the_on_error_path_dotted() -> None:
    from wfrunner.compiler.render import Arrow, arrows

    assert Arrow("X", "H", "on error", "dotted") in list(arrows(caught()))
