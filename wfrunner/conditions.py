"""CEL conditions and expressions: the only module that imports ``celpy``.

Each expression text is compiled once per process and the program cached, because edge
conditions are evaluated on every token. Values cross the boundary as JSON on both sides:
handlers and payloads never see CEL types.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import CELJSONEncoder, json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from wfrunner.errors import ConditionError

#: longest expression accepted; longer ones are rejected at compile time
MAX_EXPRESSION_LENGTH = 4096

#: the variables every expression may use (CONTRACT §2); ``value`` is bound to the element
#: a filter node is testing and is null elsewhere
VARIABLES: tuple[str, ...] = ("output", "input", "inputs", "ctx", "iteration", "value")

_ENV_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    return celpy.Environment()


@lru_cache(maxsize=4096)
def _program(expression: str) -> celpy.Runner:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(
            expression[:60] + "...",
            f"is {len(expression)} characters long; the limit is {MAX_EXPRESSION_LENGTH}",
        )
    if not expression.strip():
        raise ConditionError(expression, "is empty")
    env = _environment()
    # lark parsers are not documented as thread-safe; compiling is rare thanks to the cache
    with _ENV_LOCK:
        try:
            ast = env.compile(expression)
        except CELParseError as exc:
            raise ConditionError(expression, _parse_reason(exc)) from None
        except RecursionError:
            raise ConditionError(expression, "is nested too deeply") from None
        return env.program(ast)


def _parse_reason(exc: CELParseError) -> str:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if line is None or column is None:
        return "does not parse"
    return f"does not parse: syntax error at line {line}, column {column}"


def check(expression: str) -> None:
    """Raise :class:`ConditionError` unless ``expression`` parses."""
    _program(expression)


def to_json(value: Any) -> Any:
    """A CEL result as a plain JSON value."""
    return json.loads(json.dumps(value, cls=CELJSONEncoder))


def _activation(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {name: json_to_cel(variables.get(name)) for name in VARIABLES}


def evaluate(expression: str, variables: Mapping[str, Any], *, where: str | None = None) -> Any:
    """Evaluate ``expression`` with the CONTRACT's variables; returns JSON."""
    try:
        program = _program(expression)
    except ConditionError as exc:
        raise ConditionError(expression, exc.reason, where=where) from None
    try:
        result = program.evaluate(_activation(variables))
    except CELEvalError as exc:
        raise ConditionError(expression, _eval_reason(exc), where=where) from None
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise ConditionError(
            expression, f"evaluation failed: {type(exc).__name__}", where=where
        ) from None
    if isinstance(result, CELEvalError):
        raise ConditionError(expression, _eval_reason(result), where=where)
    return to_json(result)


def evaluate_bool(
    expression: str, variables: Mapping[str, Any], *, where: str | None = None
) -> bool:
    """Evaluate a condition, which must produce a boolean (no truthiness guessing)."""
    value = evaluate(expression, variables, where=where)
    if not isinstance(value, bool):
        raise ConditionError(
            expression, f"must be true or false, but gave {json.dumps(value)[:80]}", where=where
        )
    return value


def _eval_reason(exc: CELEvalError) -> str:
    args = exc.args
    message = str(args[0]) if args else "evaluation failed"
    if len(args) > 2 and args[2]:
        detail = args[2][0] if isinstance(args[2], tuple) else args[2]
        return f"{message} ({detail})"
    return message


__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "VARIABLES",
    "ConditionError",
    "check",
    "evaluate",
    "evaluate_bool",
    "to_json",
]
