"""What a node does without a handler: the built-in behaviour of each node type (docs/dsl.md).

One small function per type behind a dispatch dict, so adding a type is one function and one
entry. The compiler (:mod:`wfrunner.compiler.checks`) has already rejected configs a built-in
cannot run, but workers may execute definitions stored by older versions, so every failure
here is still a :class:`NodeError` starting ``node '<id>':`` and saying what to change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wfrunner import conditions, http_node
from wfrunner.errors import NodeError

#: JSON type names, for messages
_KINDS = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "list",
    dict: "object",
}


@dataclass(frozen=True)
class _Call:
    """One built-in invocation: the node, its input and the limits it runs under."""

    node_id: str
    config: dict[str, Any]
    input: Any
    variables: Mapping[str, Any]
    timeout_s: float | None
    max_bytes: int
    join: bool | None

    @property
    def where(self) -> str:
        return f"node {self.node_id!r}"

    def error(self, message: str) -> NodeError:
        return NodeError(f"{self.where}: {message}")


def _kind(value: Any) -> str:
    """The JSON type name of ``value``, for messages."""
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- transform, filter, pass-through -------------------------------------------------------


def _transform(call: _Call) -> Any:
    expression = call.config.get("expression")
    if not isinstance(expression, str):
        raise call.error("transform needs config.expression (CEL over `input`)")
    return conditions.evaluate(expression, call.variables, where=call.where)


def _filter(call: _Call) -> list[Any]:
    expression = call.config.get("filter_expression", call.config.get("expression"))
    if not isinstance(expression, str):
        raise call.error("filter needs config.filter_expression (CEL over each `value`)")
    if not isinstance(call.input, list):
        raise call.error(f"filter needs a list input, got {_kind(call.input)}")
    # converted to CEL once for the whole list, not once per element (quadratic)
    variables = conditions.Variables.of(call.variables)
    kept = []
    for element in call.input:
        if conditions.evaluate_bool(expression, variables.bind(value=element), where=call.where):
            kept.append(element)
    return kept


def _pass_through(call: _Call) -> Any:
    return call.input


def _human(call: _Call) -> Any:
    # the executor decides human nodes from their approvals (engine/human.py); a human
    # node reaching a built-in would approve itself
    raise call.error("a human node is decided by an approval, never run as a built-in")


def _function(call: _Call) -> Any:
    raise call.error("function node needs config.function_name (the handler to call)")


# --- aggregate -----------------------------------------------------------------------------


def _join_outputs(call: _Call) -> dict[str, Any] | None:
    """The join's ``{predecessor_id: output}`` when the input is one, else ``None``.

    A dict input is either a join's outputs or one predecessor's object. The caller says
    which with ``join``; when it does not, a dict whose keys are all nodes in ``ctx`` is
    taken for a join (and any dict is, when no ``ctx`` is given).
    """
    if not isinstance(call.input, dict):
        return None
    if call.join is not None:
        return call.input if call.join else None
    ctx = call.variables.get("ctx")
    if isinstance(ctx, Mapping) and not all(key in ctx for key in call.input):
        return None
    return call.input


def _merge(call: _Call, join: dict[str, Any] | None) -> dict[str, Any]:
    if join is None and isinstance(call.input, dict):
        return dict(call.input)
    if join is not None:
        parts = [(f"the output of {pred!r}", out) for pred, out in join.items()]
    elif isinstance(call.input, list):
        parts = [(f"element {i}", element) for i, element in enumerate(call.input)]
    else:
        raise call.error(f"merge needs a join of objects or an object, got {_kind(call.input)}")
    merged: dict[str, Any] = {}
    setter: dict[str, str] = {}  # key -> the label of the part that set it
    for label, part in parts:
        if not isinstance(part, dict):
            raise call.error(f"merge needs objects, but {label} is {_kind(part)}")
        for key, value in part.items():
            if key in merged and merged[key] != value:
                raise call.error(
                    f"merge: {setter[key]} and {label} both set key {key!r} "
                    f"({_show(merged[key], 30)} and {_show(value, 30)}); neither may silently "
                    "win: give them different keys, or use strategy concat"
                )
            merged[key] = value
            setter.setdefault(key, label)
    return merged


def _concat(call: _Call, join: dict[str, Any] | None) -> list[Any]:
    if join is None:
        if isinstance(call.input, list):
            return call.input
        raise call.error(
            f"{call.config['strategy']} needs a list or a join of lists, got {_kind(call.input)}"
        )
    result: list[Any] = []
    for pred, out in join.items():
        if not isinstance(out, list):
            raise call.error(
                f"{call.config['strategy']} needs lists, but the output of {pred!r} is {_kind(out)}"
            )
        result.extend(out)
    return result


def _union(call: _Call, join: dict[str, Any] | None) -> list[Any]:
    seen: set[str] = set()
    result = []
    for item in _concat(call, join):
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result


_STRATEGIES: dict[str, Callable[[_Call, dict[str, Any] | None], Any]] = {
    "merge": _merge,
    "concat": _concat,
    "union": _union,
}


def _values(call: _Call, join: dict[str, Any] | None) -> list[Any]:
    """What an operation runs over: a join's outputs (lists spread), a list's elements."""
    if join is not None:
        values: list[Any] = []
        for out in join.values():
            values.extend(out if isinstance(out, list) else [out])
        return values
    return call.input if isinstance(call.input, list) else [call.input]


def _number(call: _Call, operation: str, value: Any, index: int) -> float:
    field = call.config.get("field")
    what = f"value {index}"
    if field is not None:
        if not isinstance(value, dict) or field not in value:
            raise call.error(
                f"{operation} needs config.field {field!r} in every value, "
                f"but value {index} ({_show(value)}) has none"
            )
        value, what = value[field], f"field {field!r} of value {index}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise call.error(f"{operation} needs numbers, but {what} is {_kind(value)}")
    return value


def _operate(call: _Call, operation: str, values: list[Any]) -> float:
    if operation == "count":
        return len(values)
    if operation not in ("sum", "min", "max", "avg"):
        raise call.error(f"config.operation {operation!r} is not one of sum, count, min, max, avg")
    numbers = [_number(call, operation, value, i) for i, value in enumerate(values)]
    if operation == "sum":
        return sum(numbers)
    if not numbers:
        raise call.error(f"{operation} of no values: the input has nothing to aggregate")
    if operation == "avg":
        return sum(numbers) / len(numbers)
    return min(numbers) if operation == "min" else max(numbers)


def _aggregate(call: _Call) -> Any:
    strategy, operation = call.config.get("strategy"), call.config.get("operation")
    if strategy is None and operation is None:
        raise call.error(
            "aggregate needs config.strategy (merge, union, concat) "
            "or config.operation (sum, count, min, max, avg)"
        )
    if strategy is not None and strategy not in _STRATEGIES:
        raise call.error(f"config.strategy {strategy!r} is not one of merge, union, concat")
    join = _join_outputs(call)
    result = _values(call, join) if strategy is None else _STRATEGIES[strategy](call, join)
    if operation is None:
        return result
    values = list(result.values()) if isinstance(result, dict) else result
    return _operate(call, str(operation), values)


# --- http ----------------------------------------------------------------------------------


def _http(call: _Call) -> dict[str, Any]:
    return http_node.call_http(
        call.node_id, call.config, timeout_s=call.timeout_s, max_bytes=call.max_bytes
    )


# --- dispatch ------------------------------------------------------------------------------

_BUILTINS: dict[str, Callable[[_Call], Any]] = {
    "transform": _transform,
    "filter": _filter,
    "aggregate": _aggregate,
    "http": _http,
    "conditional": _pass_through,
    "loop": _pass_through,
    "parallel": _pass_through,
    "human": _human,
    "function": _function,
}


def run_builtin(
    node_id: str,
    node_type: str,
    config: dict[str, Any],
    input: Any,
    variables: Mapping[str, Any],
    *,
    timeout_s: float | None = None,
    max_bytes: int = 1024 * 1024,
    join: bool | None = None,
) -> Any:
    """Run the built-in of ``node_type`` and return the node's JSON output.

    ``variables`` are the CEL variables (``output``, ``input``, ``inputs``, ``ctx``,
    ``iteration``). ``join`` tells ``aggregate`` whether ``input`` is a join's
    ``{predecessor_id: output}`` object; leave it ``None`` to have it inferred from ``ctx``.
    ``timeout_s`` bounds an ``http`` node (``None``: ``WFRUNNER_HTTP_TIMEOUT``) and
    ``max_bytes`` its response body.
    """
    builtin = _BUILTINS.get(node_type)
    if builtin is None:
        raise NodeError(f"node {node_id!r}: type {node_type!r} has no built-in behaviour")
    call = _Call(node_id, config, input, variables, timeout_s, max_bytes, join)
    return builtin(call)


__all__ = ["run_builtin"]
