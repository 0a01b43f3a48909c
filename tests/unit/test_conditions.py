from __future__ import annotations

import pytest

from wfrunner import conditions
from wfrunner.errors import ConditionError


def test_variables_of_the_contract_are_bound() -> None:
    variables = {
        "output": {"score": 90},
        "input": [1, 2],
        "inputs": {"threshold": 80},
        "ctx": {"fetch": {"ok": True}},
        "iteration": 2,
    }
    expr = "output.score >= inputs.threshold && size(input) == 2 && ctx.fetch.ok && iteration == 2"
    assert conditions.evaluate_bool(expr, variables) is True


def test_missing_variables_are_null() -> None:
    assert conditions.evaluate("input == null", {}) is True


def test_results_are_plain_json() -> None:
    value = conditions.evaluate(
        "{'a': [1, 2.5, 'x', true, null], 'b': input.map(x, x * 2)}", {"input": [1, 2]}
    )
    assert value == {"a": [1, 2.5, "x", True, None], "b": [2, 4]}
    assert type(value["a"][0]) is int and type(value["a"][3]) is bool


def test_each_expression_is_compiled_once() -> None:
    expr = "output.n + 12345 > 0"
    before = conditions._program.cache_info()
    for n in range(5):
        conditions.evaluate_bool(expr, {"output": {"n": n}})
    after = conditions._program.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 4


def test_parse_error_names_the_expression() -> None:
    with pytest.raises(ConditionError) as info:
        conditions.check("output.score >=")
    assert "'output.score >='" in str(info.value)
    assert "does not parse" in str(info.value)


@pytest.mark.parametrize(
    "expr, reason",
    [
        ("output.x / 0 > 1", "divide by zero"),
        ("output.missing > 1", "no such member"),
    ],
)
def test_runtime_errors_name_expression_and_place(expr: str, reason: str) -> None:
    with pytest.raises(ConditionError) as info:
        conditions.evaluate_bool(expr, {"output": {"x": 1}}, where="edge a->b")
    message = str(info.value)
    assert message.startswith("edge a->b: CEL expression")
    assert expr in message and reason in message


def test_condition_must_be_boolean() -> None:
    with pytest.raises(ConditionError, match="must be true or false, but gave 3"):
        conditions.evaluate_bool("1 + 2", {})


def test_overlong_expression_is_refused() -> None:
    with pytest.raises(ConditionError, match="limit is 4096"):
        conditions.check("1 + " * 2000 + "1")


def test_empty_expression_is_refused() -> None:
    with pytest.raises(ConditionError, match="is empty"):
        conditions.check("   ")
