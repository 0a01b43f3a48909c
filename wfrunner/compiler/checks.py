"""Per-node checks: what each node type needs in its config to run without a handler.

A node with ``config.function_name`` runs that handler, so only handler-less nodes are held
to their built-in's needs (docs/dsl.md). CEL is parsed here, at compile time, so a typo
fails ``wfrunner validate`` rather than a run.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from typing import Any

from wfrunner import conditions
from wfrunner.compiler.ir import Loop
from wfrunner.compiler.limits import label
from wfrunner.compiler.schema import show
from wfrunner.compiler.subworkflows import subworkflow_problems
from wfrunner.errors import ConditionError

AGGREGATE_STRATEGIES = ("merge", "union", "concat")
AGGREGATE_OPERATIONS = ("sum", "count", "min", "max", "avg")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def cel_problem(where: str, what: str, expression: Any) -> str | None:
    """``None`` when ``expression`` is a CEL string that parses, else the problem."""
    if not isinstance(expression, str):
        return f"{where}: {what} must be a CEL expression string, not {show(expression)}"
    try:
        conditions.check(expression)
    except ConditionError as exc:
        return f"{where}: {what} {show(exc.expression)} {exc.reason}"
    return None


def _needs(where: str, node_type: str, fields: str, what: str) -> str:
    return f"{where}: {node_type} node without config.function_name needs {fields} ({what})"


def _function(where: str, config: dict[str, Any]) -> list[str]:
    return [_needs(where, "function", "config.function_name", "the handler to call")]


def _http(where: str, config: dict[str, Any]) -> list[str]:
    problems = []
    url = config.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.append(_needs(where, "http", "config.url", "an http:// or https:// URL"))
    method = config.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        problems.append(f"{where}: config.method {show(method)} is not one of {HTTP_METHODS}")
    return problems


def _transform(where: str, config: dict[str, Any]) -> list[str]:
    if "expression" not in config:
        return [_needs(where, "transform", "config.expression", "CEL over `input`")]
    problem = cel_problem(where, "config.expression", config["expression"])
    return [problem] if problem else []


def _filter(where: str, config: dict[str, Any]) -> list[str]:
    key = "filter_expression" if "filter_expression" in config else "expression"
    if key not in config:
        return [_needs(where, "filter", "config.filter_expression", "CEL over each `value`")]
    problem = cel_problem(where, f"config.{key}", config[key])
    return [problem] if problem else []


def _aggregate(where: str, config: dict[str, Any]) -> list[str]:
    strategy, operation = config.get("strategy"), config.get("operation")
    if strategy is None and operation is None:
        return [
            _needs(
                where,
                "aggregate",
                "config.strategy or config.operation",
                f"strategy one of {', '.join(AGGREGATE_STRATEGIES)}; "
                f"operation one of {', '.join(AGGREGATE_OPERATIONS)}",
            )
        ]
    problems = []
    if strategy is not None and strategy not in AGGREGATE_STRATEGIES:
        problems.append(
            f"{where}: config.strategy {show(strategy)} is not one of "
            f"{', '.join(AGGREGATE_STRATEGIES)}"
        )
    if operation is not None and operation not in AGGREGATE_OPERATIONS:
        problems.append(
            f"{where}: config.operation {show(operation)} is not one of "
            f"{', '.join(AGGREGATE_OPERATIONS)}"
        )
    field = config.get("field")
    if field is not None and not isinstance(field, str):
        problems.append(f"{where}: config.field must be a string, not {show(field)}")
    return problems


_BUILTIN_CHECKS = {
    "function": _function,
    "http": _http,
    "transform": _transform,
    "filter": _filter,
    "aggregate": _aggregate,
}


#: a ``human`` node's ``config.on_timeout``: what its timeout_ms decides
HUMAN_ON_TIMEOUT = ("reject", "approve")


def _human(where: str, config: dict[str, Any]) -> list[str]:
    """A human node is decided by a person (``wfrunner approve|reject``), never by code:
    a handler would make the approval approve itself."""
    problems = []
    if "function_name" in config:
        problems.append(
            f"{where}: a human node is decided with 'wfrunner approve|reject', not by a "
            "handler: remove config.function_name (or make it a 'function' node)"
        )
    policy = config.get("on_timeout")
    if policy is not None and policy not in HUMAN_ON_TIMEOUT:
        problems.append(
            f"{where}: config.on_timeout {show(policy)} is not one of {', '.join(HUMAN_ON_TIMEOUT)}"
        )
    prompt = config.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        problems.append(f"{where}: config.prompt must be a string, not {show(prompt)}")
    return problems


def node_problems(node_id: str, node_type: str, config: dict[str, Any]) -> list[str]:
    """Config problems of one node (loops are checked by :func:`loop_config`)."""
    where = f"node {node_id!r}"
    if node_type == "human":
        return _human(where, config)
    if node_type == "subworkflow":
        return subworkflow_problems(where, config)
    name = config.get("function_name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            return [f"{where}: config.function_name must be a non-empty string, not {show(name)}"]
        return []
    check = _BUILTIN_CHECKS.get(node_type)
    return check(where, config) if check else []


#: handler names a message lists at most
_NAMES_SHOWN = 20


def handler_problems(named: Iterable[tuple[str, str]], known: Collection[str]) -> list[str]:
    """One problem per ``(node, function_name)`` whose name no handler is registered under,
    with the closest registered name when one is close (a typo) and the names there are."""
    problems = []
    names = sorted(known)
    shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
    for node_id, name in named:
        if name in known:
            continue
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listed = f"registered: {shown}" if names else "no handler is registered"
        problems.append(f"node {node_id!r}: no handler registered under {name!r} ({hint}{listed})")
    return problems


def _path(
    where: str, config: dict[str, Any], key: str, known: set[str]
) -> tuple[list[str], list[str]]:
    raw = config.get(key, [])
    targets = [raw] if isinstance(raw, str) else raw
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        return [], [f"{where}: config.{key} must be a list of node ids, not {show(raw)}"]
    problems = [
        f"{where}: config.{key} names unknown node {label(t)}" for t in targets if t not in known
    ]
    return [t for t in targets if t in known], problems


def loop_config(
    node_id: str, config: dict[str, Any], known: set[str]
) -> tuple[Loop | None, list[str]]:
    """Parse a loop node's config; ``loop_back_to`` defaults to the loop node itself."""
    where = f"loop {node_id!r}"
    problems: list[str] = []
    max_iterations = config.get("max_iterations")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
        problems.append(f"{where}: config.max_iterations is required: a whole number of at least 1")
    elif max_iterations < 1:
        problems.append(
            f"{where}: config.max_iterations is {max_iterations}; it must be at least 1"
        )
    back = config.get("loop_back_to", node_id)
    if not isinstance(back, str) or back not in known:
        problems.append(f"{where}: config.loop_back_to names unknown node {show(back)}")
    condition = config.get("condition")
    if condition is None:
        problems.append(f"{where}: config.condition is required (CEL; true means go round again)")
    else:
        problem = cel_problem(where, "config.condition", condition)
        problems += [problem] if problem else []
    break_path, break_problems = _path(where, config, "break_path", known)
    timeout_path, timeout_problems = _path(where, config, "timeout_path", known)
    problems += break_problems + timeout_problems
    if problems:
        return None, problems
    loop = Loop(
        max_iterations=int(max_iterations),  # type: ignore[arg-type]
        loop_back_to=str(back),
        condition=str(condition),
        break_path=tuple(break_path),
        timeout_path=tuple(timeout_path),
    )
    return loop, []
