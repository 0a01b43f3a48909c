"""Join rules (docs/dsl.md, "Join rules"): the compiler's checks and the pure decision."""

from __future__ import annotations

from typing import Any

import pytest

from wfrunner.compiler import compile_workflow
from wfrunner.compiler.ir import IR, JoinRule
from wfrunner.engine import joinrules
from wfrunner.engine.joinrules import DEAD, FIRE, LATE, WAIT
from wfrunner.errors import CompileError, ConditionError


def fan_in(n: int = 3, **join: Any) -> dict[str, Any]:
    """A -> B1..Bn -> J."""
    branches = [f"B{i}" for i in range(1, n + 1)]
    nodes = [{"id": "A", "type": "transform", "config": {"expression": "input"}}]
    nodes += [{"id": b, "type": "transform", "config": {"expression": "input"}} for b in branches]
    nodes.append({"id": "J", "type": "transform", "config": {"expression": "input"}, **join})
    edges = [{"from": "A", "to": b} for b in branches] + [{"from": b, "to": "J"} for b in branches]
    return {"nodes": nodes, "edges": edges}


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(CompileError) as info:
        compile_workflow(doc)
    return list(info.value.problems)


@pytest.mark.parametrize(
    ("join", "expected"),
    [
        ({}, None),
        ({"join": "all"}, None),
        ({"join": "any"}, JoinRule("any", 1)),
        ({"join": {"at_least": 2}}, JoinRule("at_least", 2)),
        ({"join": {"at_least": 3}, "join_rest": "ignore"}, JoinRule("at_least", 3)),
        ({"join": {"condition": "count >= 2"}}, JoinRule("condition", 0, "count >= 2")),
    ],
)
def test_the_rule_is_in_the_ir(join: dict[str, Any], expected: JoinRule | None) -> None:
    ir = compile_workflow(fan_in(**join))
    assert ir.nodes["J"].join == expected
    again = IR.from_dict(ir.to_dict())  # the IR stored and read back keeps it
    assert again.nodes["J"].join == expected
    assert ("join" in ir.to_dict()["nodes"]["J"]) == (expected is not None)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (fan_in(join={"at_least": 0}), "node 'J': field 'join' at_least is 0; it must be"),
        (fan_in(join={"at_least": 4}), "from 1 to 3"),
        (fan_in(join={"at_least": "2"}), 'at_least is "2"'),
        (fan_in(join="some"), "node 'J': field 'join' is \"some\"; expected"),
        (fan_in(join={"at_most": 1}), "node 'J': field 'join' is"),
        (fan_in(join={"condition": "count >="}), "node 'J': field 'join': condition"),
        (fan_in(join={"condition": 3}), "node 'J': field 'join': condition must be a CEL"),
        (fan_in(join="any", join_rest="drop"), "node 'J': field 'join_rest' is \"drop\""),
        (fan_in(join_rest="cancel"), "node 'J': field 'join_rest' is \"cancel\", but join \"all\""),
        (fan_in(1, join="any"), "node 'J': field 'join' needs a join, but the node has 1"),
        (fan_in(1, join_rest="ignore"), "node 'J': field 'join_rest' needs a join"),
    ],
)
def test_the_compiler_refuses_a_bad_rule(doc: dict[str, Any], needle: str) -> None:
    found = problems(doc)
    assert len(found) == 1, found
    assert needle in found[0], found


def test_cancel_cuts_the_nodes_that_only_feed_the_join() -> None:
    """A -> B -> J; A -> C -> C2 -> J; A -> D -> J and D -> E: B, C and C2 lead only into
    J; D also feeds E, and A feeds D."""
    t = {"type": "transform", "config": {"expression": "input"}}
    nodes = [{"id": n, **t} for n in ("A", "B", "C", "C2", "D", "E", "K")]
    nodes.append({"id": "J", **t, "join": "any", "join_rest": "cancel"})
    pairs = [("A", "B"), ("A", "C"), ("C", "C2"), ("C2", "J"), ("B", "J"), ("A", "D")]
    pairs += [("D", "J"), ("D", "E"), ("J", "K")]
    ir = compile_workflow({"nodes": nodes, "edges": [{"from": a, "to": b} for a, b in pairs]})
    assert ir.nodes["J"].join == JoinRule("any", 1, None, "cancel", ("B", "C", "C2"))
    assert ir.to_dict()["nodes"]["J"]["join"]["cut"] == ["B", "C", "C2"]


ANY, TWO = JoinRule("any", 1), JoinRule("at_least", 2)
COND = JoinRule("condition", 0, "count >= 2 || (has(arrived.B1) && arrived.B1.fast)")


@pytest.mark.parametrize(
    ("rule", "arrived", "dead", "fired", "verdict"),
    [
        (ANY, {"B1": 1}, 0, False, FIRE),
        (ANY, {"B1": 1, "B2": 2}, 0, True, LATE),
        (ANY, {}, 1, False, WAIT),
        (ANY, {}, 3, False, DEAD),  # every input died: dead whatever the rule
        (TWO, {"B1": 1}, 0, False, WAIT),
        (TWO, {"B1": 1}, 1, False, WAIT),
        (TWO, {"B1": 1}, 2, False, DEAD),  # one live path of three: at_least 2 never held
        (TWO, {"B1": 1, "B3": 3}, 1, False, FIRE),
        (TWO, {"B1": 1, "B2": 2, "B3": 3}, 0, True, LATE),
        (COND, {"B2": {}}, 0, False, WAIT),
        (COND, {"B1": {"fast": True}}, 0, False, FIRE),
        (COND, {"B2": {}, "B3": {}}, 0, False, FIRE),
        (COND, {"B2": {}}, 2, False, DEAD),
    ],
)
def test_verdict(
    rule: JoinRule, arrived: dict[str, Any], dead: int, fired: bool, verdict: str
) -> None:
    assert joinrules.verdict(rule, "J", arrived, dead, 3, fired) == verdict


def test_the_condition_sees_its_variables() -> None:
    rule = JoinRule("condition", 0, "count == 1 && dead == 1 && expected == 3 && arrived.B.v == 7")
    assert joinrules.holds(rule, "J", {"B": {"v": 7}}, 1, 3)


def test_a_condition_that_does_not_give_a_boolean_names_the_join() -> None:
    with pytest.raises(ConditionError, match="node 'J' join condition"):
        joinrules.holds(JoinRule("condition", 0, "count"), "J", {"B": 1}, 0, 2)


def test_the_reason_names_the_rule() -> None:
    assert joinrules.never_held(TWO, 1, 3) == (
        "join rule at_least 2 never held: every input arrived (1 of 3 live) without firing it"
    )


def test_cancel_never_cuts_a_human_node_nor_what_leads_to_it() -> None:
    """A -> H (human) -> J; A -> B -> J: H waits for a person and is not cut, and neither
    is A (it leads to H); B is."""
    t = {"type": "transform", "config": {"expression": "input"}}
    nodes = [{"id": "A", **t}, {"id": "B", **t}, {"id": "H", "type": "human", "config": {}}]
    nodes.append({"id": "J", **t, "join": "any", "join_rest": "cancel"})
    pairs = [("A", "H"), ("A", "B"), ("H", "J"), ("B", "J")]
    ir = compile_workflow({"nodes": nodes, "edges": [{"from": a, "to": b} for a, b in pairs]})
    assert ir.nodes["J"].join is not None
    assert ir.nodes["J"].join.cut == ("B",)
