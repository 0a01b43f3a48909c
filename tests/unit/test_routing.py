"""Fast tests of the pure routing decisions (``wfrunner.engine.routing``): which successors
a finished node's tokens go to, which paths die, and when a loop goes round again.

No Redis, no worker: each test builds IR nodes by hand and calls :func:`decide` with the
CEL variables a worker would pass.
"""

from __future__ import annotations

from typing import Any

import pytest

from wfrunner.compiler.ir import Branch, BranchRule, IRNode, Loop
from wfrunner.engine import scope as scopes
from wfrunner.engine.routing import Route, dead_successors, decide


def _vars(output: Any, **more: Any) -> dict[str, Any]:
    return {"output": output, "input": None, "inputs": {}, "iteration": 1, "ctx": {}, **more}


def branching(*rules: tuple[str, tuple[str, ...]], default: tuple[str, ...] = ()) -> IRNode:
    return IRNode(
        id="A",
        type="transform",
        dependents=("Always",),
        branch=Branch(
            rules=tuple(BranchRule(condition=c, next_nodes=n) for c, n in rules), default=default
        ),
    )


def targets(routes: tuple[Route, ...]) -> list[str]:
    return [r.target for r in routes]


# --- branches ------------------------------------------------------------------------


def test_every_rule_that_holds_is_taken_in_edge_order() -> None:
    node = branching(("output > 1", ("B",)), ("output > 5", ("C",)), ("output > 2", ("D",)))
    decision = decide(node, "", _vars(10))
    assert targets(decision.live) == ["Always", "B", "C", "D"]
    assert decision.dead == ()


def test_rules_that_do_not_hold_are_dead_paths() -> None:
    node = branching(("output > 1", ("B",)), ("output > 5", ("C",)), ("output > 2", ("D",)))
    decision = decide(node, "", _vars(3))
    assert targets(decision.live) == ["Always", "B", "D"]
    assert targets(decision.dead) == ["C"]


def test_the_default_is_taken_only_when_no_rule_holds() -> None:
    node = branching(("output == 1", ("B",)), ("output == 2", ("C",)), default=("Else",))
    none_held = decide(node, "", _vars(7))
    assert targets(none_held.live) == ["Always", "Else"]
    assert targets(none_held.dead) == ["B", "C"]
    one_held = decide(node, "", _vars(2))
    assert targets(one_held.live) == ["Always", "C"]
    assert targets(one_held.dead) == ["B", "Else"]


def test_no_edge_taken_without_a_default_kills_every_branch_target() -> None:
    node = IRNode(
        id="A",
        type="transform",
        branch=Branch(rules=(BranchRule("output > 100", ("B",)), BranchRule("false", ("C",)))),
    )
    decision = decide(node, "", _vars(1))
    assert decision.live == ()
    assert targets(decision.dead) == ["B", "C"]


def test_a_target_named_by_two_rules_gets_one_token() -> None:
    node = branching(("true", ("B",)), ("true", ("B", "C")))
    assert targets(decide(node, "", _vars(0)).live) == ["Always", "B", "C"]


def test_routes_keep_the_scope_of_the_node() -> None:
    node = branching(("true", ("B",)))
    decision = decide(node, "L=3", _vars(0))
    assert {r.scope for r in decision.live} == {"L=3"}
    assert [r.iteration for r in decision.live] == [3, 3]


def test_a_plain_node_emits_to_every_dependent() -> None:
    node = IRNode(id="A", type="transform", dependents=("B", "C"))
    decision = decide(node, "", _vars(None))
    assert targets(decision.live) == ["B", "C"]
    assert decision.dead == () and decision.loop is None


# --- loops ---------------------------------------------------------------------------


def looping(max_iterations: int, condition: str = "true") -> IRNode:
    return IRNode(
        id="L",
        type="loop",
        loop=Loop(
            max_iterations=max_iterations,
            loop_back_to="X",
            condition=condition,
            break_path=("Ok",),
            timeout_path=("Late",),
        ),
    )


def scope_at_pass(number: int) -> str:
    scope = ""
    for _ in range(number - 1):
        scope = scopes.next_pass(scope, "L")
    return scope


@pytest.mark.parametrize("number", [1, 2, 4])
def test_a_loop_goes_back_while_its_condition_holds_below_max_iterations(number: int) -> None:
    decision = decide(looping(5), scope_at_pass(number), _vars(0))
    assert decision.loop == ("back", number)
    assert decision.live == (Route("X", f"L={number + 1}", passes=1),)  # one more loop-back
    assert decision.dead == ()


def test_the_pass_at_max_iterations_times_out_instead_of_going_back() -> None:
    decision = decide(looping(5), scope_at_pass(5), _vars(0))
    assert decision.loop == ("timeout", 5)
    assert decision.live == (Route("Late", ""),)
    assert decision.dead == (Route("Ok", ""),)


def test_max_iterations_one_never_goes_back() -> None:
    decision = decide(looping(1), "", _vars(0))
    assert decision.loop == ("timeout", 1)


def test_a_false_condition_breaks_on_any_pass() -> None:
    for number in (1, 3, 5):
        decision = decide(looping(5, "iteration > 100"), scope_at_pass(number), _vars(0))
        assert decision.loop == ("break", number)
        assert decision.live == (Route("Ok", ""),)
        assert decision.dead == (Route("Late", ""),)


def test_the_loop_condition_sees_the_pass_number_as_iteration() -> None:
    decisions = [
        decide(looping(10, "iteration < 3"), scope_at_pass(n), _vars(0)) for n in (1, 2, 3)
    ]
    assert [d.loop for d in decisions] == [("back", 1), ("back", 2), ("break", 3)]


def test_leaving_a_nested_loop_keeps_the_outer_scope() -> None:
    decision = decide(looping(2), "Outer=2,L=2", _vars(0))
    assert decision.loop == ("timeout", 2)
    assert decision.live == (Route("Late", "Outer=2"),)


def test_a_dead_loop_kills_both_of_its_exits() -> None:
    assert targets(dead_successors(looping(3), "L=2")) == ["Ok", "Late"]
    assert {r.scope for r in dead_successors(looping(3), "L=2")} == {""}
