"""CEL variables: converted only when an expression names them, once per node evaluation,
inside the step budget; integers beyond 64 bits fail only the expressions that read them."""

from __future__ import annotations

from typing import Any

import pytest

from wfrunner import conditions
from wfrunner.builtins import run_builtin
from wfrunner.compiler.ir import Branch, BranchRule, IRNode, Loop
from wfrunner.conditions import Variables
from wfrunner.engine.routing import decide
from wfrunner.errors import ConditionError, WfrunnerError

BIG = 2**70  # beyond int64 and uint64
RANGE = "beyond CEL's 64-bit integer range (-2^63 to 2^63-1); send such a number as a string"


def reason(expression: str, variables: Any, **kw: Any) -> str:
    with pytest.raises(ConditionError) as info:
        conditions.evaluate(expression, variables, where="node 'n'", **kw)
    assert isinstance(info.value, WfrunnerError)
    assert str(info.value).startswith(f"node 'n': CEL expression {expression!r}: ")
    return info.value.reason


# --- converted lazily and once -------------------------------------------------------------


def test_only_the_variables_an_expression_names_are_converted() -> None:
    variables = Variables({"input": list(range(1_000)), "inputs": {"t": 1}, "ctx": {"a": [1]}})
    assert conditions.evaluate("inputs.t == 1", variables) is True
    assert variables.converted == 2  # inputs and its one member; input and ctx untouched


def test_a_field_or_function_named_like_a_variable_is_no_read() -> None:
    variables = Variables({"input": list(range(100)), "inputs": {"input": 2}})
    assert conditions.evaluate("inputs.input == 2", variables) is True
    assert variables.converted == 2


def test_each_variable_is_converted_once_across_evaluations() -> None:
    variables = Variables({"input": list(range(1_000)), "output": {"n": 3}})
    for _ in range(50):
        assert conditions.evaluate_bool("input.size() == 1000 && output.n == 3", variables)
    assert variables.converted == 1_001 + 2


def test_filter_converts_the_variables_once_for_the_whole_list() -> None:
    data = list(range(1_000))
    variables = Variables({"input": data, "inputs": {"rows": data, "t": 500}, "ctx": {}})
    kept = run_builtin("n1", "filter", {"filter_expression": "value >= inputs.t"}, data, variables)
    assert kept == data[500:]
    assert variables.converted == 1 + 2 + 1_000  # inputs, once; input never (not read)


@pytest.mark.timeout(180)  # seconds here; converting `inputs` per element takes hours
def test_filter_over_100k_elements_completes() -> None:
    data = [i % 3 == 0 for i in range(100_000)]
    variables = {"input": data, "inputs": {"on": True, "rows": data}, "ctx": {}}
    kept = run_builtin("n1", "filter", {"filter_expression": "value && inputs.on"}, data, variables)
    assert len(kept) == 33_334


def test_branch_rules_share_one_conversion() -> None:
    node = IRNode(
        "b",
        "conditional",
        branch=Branch(
            rules=tuple(BranchRule(f"output.rows.size() > {i}", (f"t{i}",)) for i in range(5)),
        ),
    )
    variables = Variables({"output": {"rows": list(range(100))}, "input": None})
    decision = decide(node, "", variables)
    assert [r.target for r in decision.live] == [f"t{i}" for i in range(5)]
    assert variables.converted == 1 + 1 + 100


def test_the_loop_condition_reads_its_own_pass_and_shares_the_rest() -> None:
    loop = Loop(max_iterations=9, loop_back_to="b", condition="iteration < output.stop")
    node = IRNode("l", "loop", loop=loop)
    variables = Variables({"output": {"stop": 3}, "iteration": 1})
    assert decide(node, "l=2", variables).loop == ("back", 2)
    assert decide(node, "l=3", variables).loop == ("break", 3)
    assert variables.converted == 2  # output, once; iteration is bound per decision


# --- the conversion is paid from the step budget -------------------------------------------


def test_converting_a_variable_costs_steps() -> None:
    big = {"input": list(range(100_000))}
    cost = 100_000 // conditions.VALUES_PER_STEP
    assert reason("input.size() > 0", big, max_steps=cost - 100) == (
        f"exceeded the evaluation budget of {cost - 100:,} steps"
    )
    assert conditions.evaluate("input.size() > 0", big, max_steps=cost + 100) is True
    assert conditions.evaluate("inputs == null", big, max_steps=100) is True  # input unread


def test_a_big_variable_read_in_part_is_not_a_big_value() -> None:
    heavy = {"small": 1, "big": ["x" * 1_000] * 2_000}  # 2 million characters in all
    assert conditions.evaluate("ctx.small == 1", {"ctx": heavy}) is True
    assert reason("[ctx, ctx]", {"ctx": heavy}).startswith("produced a value of more than")


# --- integers beyond 64 bits ---------------------------------------------------------------


def test_an_out_of_range_integer_nobody_reads_changes_nothing() -> None:
    variables = {
        "input": {"a": 1, "b": BIG, "items": [{"n": -BIG}]},
        "inputs": {"id": 2**64},
        "ctx": {"other": {"n": BIG}},
        "output": [BIG],
    }
    assert conditions.evaluate_bool("input.a == 1 && size(input.items) == 1", variables)
    assert conditions.evaluate("has(input.b) && size(ctx) == 1", variables) is True
    assert conditions.evaluate("iteration == null", variables) is True


def test_an_out_of_range_integer_passed_through_is_unchanged() -> None:
    document = {"a": 1, "b": BIG, "items": [{"n": -BIG}]}
    assert conditions.evaluate("input", {"input": document}) == document
    assert conditions.evaluate("input.items.map(i, i.n)", {"input": document}) == [-BIG]
    assert run_builtin("n1", "transform", {"expression": "input"}, document, {"input": document})
    assert conditions.evaluate("string(input.b)", {"input": document}) == str(BIG)


@pytest.mark.parametrize(
    "expression",
    [
        "input.items[3].n > 0",
        "0 < input.items[3].n",
        "input.items[3].n + 1",
        "1 + input.items[3].n",
        "input.items[3].n == 5",
        "5 == input.items[3].n",
        "input.items.exists(i, i.n == 7)",
        "int(input.items[3].n) > 0",
        "input.items[3] == {'n': 1}",
    ],
)
def test_reading_an_out_of_range_integer_names_its_path(expression: str) -> None:
    items = [{"n": 1}, {"n": 2}, {"n": 3}, {"n": BIG}]
    assert reason(expression, {"input": {"items": items}}) == (
        f"input.items[3].n is {BIG}, {RANGE} (or a float) if an expression needs it"
    )


def test_the_path_quotes_keys_that_are_not_names() -> None:
    variables = {"ctx": {"fetch-1": {"total count": [0, 2**63]}}}
    assert reason("ctx['fetch-1']['total count'][1] > 0", variables).startswith(
        f'ctx["fetch-1"]["total count"][1] is {2**63}, beyond'
    )


def test_filter_reading_an_out_of_range_element_names_the_node_and_the_value() -> None:
    data = [{"n": 1}, {"n": -BIG}]
    with pytest.raises(ConditionError) as info:
        run_builtin("f1", "filter", {"filter_expression": "value.n > 0"}, data, {"input": data})
    assert str(info.value).startswith("node 'f1': CEL expression 'value.n > 0': value.n is -")
