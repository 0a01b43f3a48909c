"""Compile-time checks of failure handling: a node's ``on_error`` and the workflow's
``on_failure`` (docs/failures.md).

``on_error`` names the node that takes over when a node fails for good. The compiler
treats it as one more possible successor (a forward edge for the cycle, loop and join
checks, and for dead-path elimination), so it must name another node of the workflow,
and not one an edge from the node already reaches: that node would get the node's output
on success and its error on failure through one arrival.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from wfrunner.compiler.checks import handler_problems
from wfrunner.compiler.limits import label
from wfrunner.compiler.schema import show


def on_error_targets(
    nodes: Mapping[str, dict[str, Any]], reached: Mapping[str, Collection[str]]
) -> tuple[dict[str, str], list[str]]:
    """node id -> its on_error node, and one problem per bad ``on_error``; ``reached``:
    node id -> the nodes its edges (or a loop's exits) lead to."""
    targets: dict[str, str] = {}
    problems: list[str] = []
    for node_id, node in nodes.items():
        if "on_error" not in node:
            continue
        target = node["on_error"]
        where = f"node {node_id!r}: on_error"
        if not isinstance(target, str):
            continue  # the schema reports it
        if target not in nodes:
            problems.append(f"{where} names unknown node {label(target)}")
        elif target == node_id:
            problems.append(
                f"{where} names the node itself: name another node to run when it fails"
            )
        elif target in reached.get(node_id, ()):
            problems.append(
                f"{where} {target!r} is also where the node goes on success: remove "
                f"the edge {node_id}->{target}, or name another node to run when it fails"
            )
        else:
            targets[node_id] = target
    return targets, problems


def on_failure_handler(
    doc: Mapping[str, Any], handlers: Collection[str] | None
) -> tuple[str | None, list[str]]:
    """The workflow's ``on_failure`` handler name, and its problems (an unknown handler,
    when the registered ones are known)."""
    raw = doc.get("on_failure")
    if raw is None:
        return None, []
    name = raw.get("function_name") if isinstance(raw, dict) else None
    if not isinstance(name, str):
        return None, []  # the schema reports it
    if not name.strip():
        return None, [f"on_failure: function_name must name a handler, not {show(name)}"]
    if handlers is None:
        return name, []
    found = handler_problems([("on_failure", name)], handlers)
    return name, [p.replace("node 'on_failure'", "on_failure", 1) for p in found]
