"""A map node's config (``map_over``, ``max_concurrency``): see docs/map.md.

A human node is decided once by a person, a subworkflow node starts one child run, and a
loop node's next pass depends on its one output: none can run once per element, so they
are refused rather than half-supported. So is ``on_error`` on a map node: a failure
caught per element would send the on_error node one token per failed element.
"""

from __future__ import annotations

from typing import Any

from wfrunner.compiler.checks import cel_problem
from wfrunner.compiler.schema import show

#: node types that cannot be map nodes, and why
_REFUSED = {
    "human": "a human node is decided once by a person",
    "loop": "a loop node decides its next pass from one output",
    "subworkflow": "a subworkflow node starts one child run",
}


def map_problems(
    node_id: str, node_type: str, config: dict[str, Any], on_error: bool = False
) -> list[str]:
    """One problem per wrong field of a map node's config (none for other nodes);
    ``on_error``: the node names an on_error node."""
    where = f"node {node_id!r}"
    if "map_over" not in config:
        if "max_concurrency" in config:
            return [f"{where}: config.max_concurrency needs config.map_over (the list to map)"]
        return []
    if node_type in _REFUSED:
        return [
            f"{where}: config.map_over is not allowed on a {node_type} node "
            f"({_REFUSED[node_type]}); map in a node before or after it"
        ]
    problems = []
    if on_error:
        problems.append(
            f"{where}: on_error is not supported on a map node (config.map_over): an element "
            "that fails for good fails the run; catch errors in the handler, or map in a node "
            "of its own and put on_error on a node after it"
        )
    problem = cel_problem(where, "config.map_over", config["map_over"])
    if problem:
        problems.append(problem)
    cap = config.get("max_concurrency", 1)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        problems.append(
            f"{where}: config.max_concurrency must be a whole number of at least 1, not {show(cap)}"
        )
    return problems
