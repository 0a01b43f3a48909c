"""CEL evaluation is bounded in steps, time and size; every bound is a ConditionError."""

from __future__ import annotations

import pytest

from wfrunner import conditions
from wfrunner.errors import ConditionError

TEN = "[1,2,3,4,5,6,7,8,9,10]"
MAP_BOMB = f"{TEN}.map(a, {TEN}.map(b, {TEN}.map(c, {TEN}.map(d, a+b+c+d))))"
SHARED = "[1].map(a, [a, a])" + ".map(b, [b, b])" * 30  # tiny in memory, 2^31 when spelled out


def reason(expression: str, variables: dict[str, object] | None = None, **kw: int) -> str:
    with pytest.raises(ConditionError) as info:
        conditions.evaluate(expression, variables or {}, where="node 'n'", **kw)
    assert info.value.expression == expression
    assert str(info.value).startswith("node 'n': CEL expression ")
    return info.value.reason


@pytest.mark.timeout(10)
def test_nested_map_bomb_exceeds_the_step_budget() -> None:
    """How long the budget takes to stop it: ``bench/compile_and_cel.py``."""
    conditions.check(MAP_BOMB)  # it parses: only evaluating it is too much
    assert reason(MAP_BOMB) == "exceeded the evaluation budget of 100,000 steps"


def test_budget_is_per_call() -> None:
    three = f"{TEN}.map(a, {TEN}.map(b, a * b)).size()"
    assert conditions.evaluate(three, {}) == 10
    assert reason(three, max_steps=500) == "exceeded the evaluation budget of 500 steps"
    assert conditions.evaluate(three, {}) == 10  # the cached program keeps no spent budget


def test_evaluate_bool_passes_the_budget_on() -> None:
    with pytest.raises(ConditionError, match="budget of 50 steps"):
        conditions.evaluate_bool(f"{TEN}.all(x, x > 0)", {}, max_steps=50)


def test_normal_expressions_are_unaffected() -> None:
    variables = {"output": {"score": 90, "tags": ["a", "b"]}, "inputs": {"threshold": 80}}
    assert conditions.evaluate_bool("output.score >= inputs.threshold", variables) is True
    assert conditions.evaluate("output.tags.map(t, t + '!')", variables) == ["a!", "b!"]
    assert conditions.evaluate("input.filter(x, x % 2 == 0).size()", {"input": list(range(1000))})


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "expression",
    [f"{SHARED} == {SHARED}", f"{SHARED} in [{SHARED}]", SHARED],
)
def test_values_that_grow_exponentially_are_refused(expression: str) -> None:
    assert reason(expression) == "produced a value of more than 1,000,000 elements and characters"


@pytest.mark.timeout(10)
def test_string_doubling_is_refused() -> None:
    doubling = "[" + ",".join(map(str, range(30))) + "].reduce(r, i, 'ab', r + r)"
    assert "more than 1,000,000 elements and characters" in reason(doubling)


@pytest.mark.timeout(10)
def test_total_allocation_is_bounded() -> None:
    many = "[" + ",".join(map(str, range(200))) + "].map(i, inputs.s + inputs.s)"
    assert reason(many, {"inputs": {"s": "y" * 400_000}}) == (
        "built more than 10,000,000 elements and characters in all"
    )


def test_large_input_passes_through() -> None:
    big = list(range(100_000))
    assert conditions.evaluate("input", {"input": big}) == big


def test_overlong_expression_is_refused() -> None:
    text = "x == '" + "a" * 5000 + "'"
    with pytest.raises(ConditionError, match="is 5007 characters long; the limit is 4096"):
        conditions.check(text)
    assert "the limit is 4096" in reason(text)


@pytest.mark.parametrize("depth", [45, 100, 1_000, 2_000])
def test_deep_parentheses_are_a_condition_error(depth: int) -> None:
    text = "(" * depth + "1" + ")" * depth
    with pytest.raises(ConditionError, match="nested too deeply"):
        conditions.check(text)
    assert "nested too deeply" in reason(text)


def test_moderate_nesting_still_works() -> None:
    assert conditions.evaluate("(" * 35 + "1" + ")" * 35, {}) == 1
    chain = " || ".join(f"input == {i}" for i in range(250))
    assert conditions.evaluate(chain, {"input": 1_000}) is False


@pytest.mark.timeout(20)
def test_errors_down_a_long_chain_stay_small() -> None:
    # celpy quotes each operand's error in the next one: unchecked, the text doubles per level
    text = " || ".join(f"nope == {i}" for i in range(250))
    message = reason(text)
    assert message.startswith("found no matching overload for _||_")
    assert len(message) <= 700


def test_deep_list_literal_is_refused_at_compile_time() -> None:
    with pytest.raises(ConditionError, match="nested too deeply"):
        conditions.check("[" * 60 + "]" * 60)


def test_runtime_error_names_the_expression() -> None:
    message = reason("1 / (iteration - iteration) > 0", {"iteration": 1})
    assert "divide by zero" in message


def test_deep_input_is_a_condition_error() -> None:
    value: object = 1
    for _ in range(5_000):
        value = [value]
    assert reason("input", {"input": value}).startswith("evaluation failed: RecursionError")


def test_deep_result_is_a_condition_error() -> None:
    value: object = 1
    for _ in range(300):
        value = [value]
    assert reason("input", {"input": value}) == "produced a value nested more than 200 levels deep"
