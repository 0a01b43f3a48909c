"""CEL errors inside list and map literals name the element that failed (its path in the
literal and its text), and ``string()`` of a list or map is JSON text, not a Python repr."""

from __future__ import annotations

import json

import pytest

from wfrunner import conditions
from wfrunner.errors import ConditionError

VARIABLES = {"input": {"x": 1, "big": 2**70, "items": [1, 'a"b', None, True]}}
DIV = "modulus or divide by zero"


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("{'a': input.nope}", "at ['a'] (input.nope): no such member in mapping: 'nope'"),
        ("{'a': 1, 'b': 1/0}", f"at ['b'] (1/0): {DIV}"),
        ("[1, input.nope]", "at [1] (input.nope): no such member in mapping: 'nope'"),
        ("{'a': {'b': [2, 1/0]}}", f"at ['a']['b'][1] (1/0): {DIV}"),
        ("{1: {true: 1/0}}", f"at [1][true] (1/0): {DIV}"),
        ("{input.nope: 1}", "at key #1 (input.nope): no such member in mapping: 'nope'"),
        ("{'a': [1/0][0] + 1}", f"at ['a'] ([1/0][0] + 1): at [0] (1/0): {DIV}"),
        ("{'a': 1/0}.a", f"at ['a'] (1/0): {DIV}"),
        ("[1, 2].map(x, {'v': x / 0})", f"at ['v'] (x / 0): {DIV}"),
        ("input.nope[0]", "no such member in mapping: 'nope'"),
    ],
)
def test_a_failing_element_is_named(expression: str, reason: str) -> None:
    with pytest.raises(ConditionError) as info:
        conditions.evaluate(expression, VARIABLES, where="node 't'")
    assert info.value.reason.startswith(reason), info.value.reason
    assert str(info.value).startswith(f"node 't': CEL expression {expression!r}: {reason}")
    assert "not JSON" not in info.value.reason


def test_an_out_of_range_element_is_named_by_its_path() -> None:
    with pytest.raises(ConditionError, match=r"input\.big is 1180591620717411303424, beyond"):
        conditions.evaluate("{'n': input.big + 1}", VARIABLES)


def test_literals_that_succeed_are_unchanged() -> None:
    assert conditions.evaluate("{'a': [input.x, {'b': 2}], 'c': {}}", VARIABLES) == {
        "a": [1, {"b": 2}],
        "c": {},
    }
    assert conditions.evaluate("[]", VARIABLES) == []
    with pytest.raises(ConditionError, match="Duplicate key"):
        conditions.evaluate("{'a': 1, 'a': 2}", VARIABLES)


@pytest.mark.parametrize(
    "expression, text",
    [
        ("string([1, 2])", "[1, 2]"),
        ("string(input.items)", '[1, "a\\"b", null, true]'),
        ("string({'a': {'b': [1.5, false]}})", '{"a": {"b": [1.5, false]}}'),
        ("string(input)", json.dumps(VARIABLES["input"])),
        ("string(true)", "true"),
        ("string(null)", "null"),
        ("string(1.5)", "1.5"),
        ("string(-3)", "-3"),
        ("string('é')", "é"),
        ("string(['é'])", '["é"]'),
        ("string(input.big)", str(2**70)),
        ("string(duration('90s'))", "90s"),
    ],
)
def test_string_gives_json_like_text(expression: str, text: str) -> None:
    assert conditions.evaluate(expression, VARIABLES) == text


def test_a_result_that_is_not_json_says_what_it_is() -> None:
    with pytest.raises(ConditionError, match=r"not JSON \(TypeError: Object of type type"):
        conditions.evaluate("type(1)", VARIABLES)
