"""The run-wide cap on loop passes: counted along each token's lineage, carried in the
token (so a redelivered copy counts the same), checked by the pure routing decision."""

from __future__ import annotations

import pytest

from wfrunner.compiler.ir import IRNode, Loop
from wfrunner.engine.routing import decide
from wfrunner.engine.tokens import Token
from wfrunner.errors import LoopLimitError, WfrunnerError
from wfrunner.settings import DOCUMENTED, Settings

SPIN = IRNode(
    "spin",
    "loop",
    loop=Loop(max_iterations=10**9, loop_back_to="spin", condition="true", break_path=("done",)),
)


def test_a_loop_back_counts_one_more_pass() -> None:
    decision = decide(SPIN, "spin=7", {}, passes=41, max_passes=100)
    assert decision.loop == ("back", 7)
    [back] = decision.live
    assert (back.target, back.scope, back.passes) == ("spin", "spin=8", 42)


def test_the_pass_past_the_cap_fails_naming_the_loop_and_the_setting() -> None:
    assert decide(SPIN, "spin=99", {}, passes=99, max_passes=100).live[0].passes == 100
    with pytest.raises(LoopLimitError) as info:
        decide(SPIN, "spin=100", {}, passes=100, max_passes=100)
    assert isinstance(info.value, WfrunnerError)
    assert str(info.value) == (
        "loop 'spin' would go round again, but the path to it has gone round loops 100 "
        "times already, the most a run allows (WFRUNNER_MAX_LOOP_PASSES): make the loop's "
        "condition turn false sooner, lower its max_iterations, or raise "
        "WFRUNNER_MAX_LOOP_PASSES"
    )


def test_leaving_a_loop_at_the_cap_is_fine() -> None:
    done = IRNode(
        "l", "loop", loop=Loop(max_iterations=3, loop_back_to="l", condition="iteration < 3")
    )
    assert decide(done, "l=3", {}, passes=100, max_passes=100).loop == ("break", 3)
    timeout = IRNode("t", "loop", loop=Loop(max_iterations=2, loop_back_to="t", condition="true"))
    assert decide(timeout, "t=2", {}, passes=100, max_passes=100).loop == ("timeout", 2)


def test_other_routes_carry_the_lineage_unchanged() -> None:
    node = IRNode("a", "transform", dependents=("b", "c"))
    assert {r.passes for r in decide(node, "", {}, passes=5, max_passes=5).live} == {5}
    exit_node = IRNode(
        "x",
        "loop",
        loop=Loop(max_iterations=9, loop_back_to="x", condition="false", break_path=("out",)),
    )
    [out] = decide(exit_node, "x=4", {}, passes=12).live
    assert (out.target, out.scope, out.passes) == ("out", "", 12)


def test_nested_loops_add_their_passes_along_the_lineage() -> None:
    """An inner loop's passes stay on the path into the outer loop's next pass, so the cap
    bounds inner x outer passes, not each loop alone."""
    inner = IRNode(
        "inner",
        "loop",
        loop=Loop(max_iterations=3, loop_back_to="inner", condition="true", timeout_path=("o",)),
    )
    outer = IRNode(
        "o", "loop", loop=Loop(max_iterations=10**6, loop_back_to="inner", condition="true")
    )
    token = Token("run", None, "inner")
    scope, passes, outer_passes = "", 0, 0
    with pytest.raises(LoopLimitError):
        for _ in range(100):
            for node in (inner, inner, inner, outer):
                [route] = decide(node, scope, {}, passes=passes, max_passes=20).live
                token = token.child(route.target, scope=route.scope, passes=route.passes)
                scope, passes = token.scope, token.passes
            outer_passes += 1
    assert passes == 20
    assert outer_passes == 6  # 2 inner loop-backs and 1 outer one per outer pass: 6 x 3 = 18


def test_without_a_cap_decisions_are_unbounded() -> None:
    assert decide(SPIN, "spin=2", {}, passes=10**9).live[0].passes == 10**9 + 1


def test_passes_travel_with_the_token_and_are_not_its_identity() -> None:
    token = Token("run", "a", "b", iteration=3, scope="l=3", passes=17)
    again = Token.from_dict(token.to_dict())
    assert again == token and again.passes == 17
    assert again.key == Token("run", "a", "b", iteration=3, scope="l=3").key
    assert token.child("c").passes == 17
    old = {k: v for k, v in token.to_dict().items() if k != "passes"}
    assert Token.from_dict(old).passes == 0  # a token written before passes were counted
    with pytest.raises(ValueError, match="passes"):
        Token("run", "a", "b", passes=-1)


def test_the_setting() -> None:
    assert Settings.from_env({}).max_loop_passes == 10_000
    assert Settings.from_env({"WFRUNNER_MAX_LOOP_PASSES": "50"}).max_loop_passes == 50
    assert DOCUMENTED["WFRUNNER_MAX_LOOP_PASSES"][0] == "10000"
