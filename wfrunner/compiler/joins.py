"""A node's ``join`` and ``join_rest`` fields -> :class:`JoinRule` (docs/dsl.md, "Join rules").

Checked after the graph is known: a rule only means something on a node with more than
one incoming edge, and ``at_least`` is bounded by the number of them. One problem per
field, naming the node and the field.
"""

from __future__ import annotations

from typing import Any

from wfrunner.compiler.checks import cel_problem
from wfrunner.compiler.ir import JoinRule
from wfrunner.compiler.schema import show

JOIN_RESTS = ("ignore", "cancel")
_SHAPES = '"all", "any", {"at_least": k} or {"condition": "<CEL>"}'


def join_rule(node_id: str, raw: dict[str, Any], predecessors: int) -> JoinRule | str | None:
    """The rule of node ``raw`` (None: the default, wait for all), or the problem."""
    where = f"node {node_id!r}"
    if "join" not in raw and "join_rest" not in raw:
        return None
    if predecessors < 2:
        field = "join" if "join" in raw else "join_rest"
        return (
            f"{where}: field {field!r} needs a join, but the node has {predecessors} "
            "incoming edge(s); remove it or add edges from more nodes"
        )
    rest = raw.get("join_rest", "ignore")
    if rest not in JOIN_RESTS:
        return f"{where}: field 'join_rest' is {show(rest)}; expected one of: ignore, cancel"
    rule = raw.get("join", "all")
    if rule == "all" and rest == "cancel":
        return (
            f'{where}: field \'join_rest\' is "cancel", but join "all" fires once every '
            "input arrived, so nothing is left to cancel; remove join_rest or set a join rule"
        )
    if rule in ("all", "any"):
        return None if rule == "all" else JoinRule("any", 1, None, rest)
    if isinstance(rule, dict) and list(rule) == ["at_least"]:
        k = rule["at_least"]
        if type(k) is not int or not 1 <= k <= predecessors:
            return (
                f"{where}: field 'join' at_least is {show(k)}; it must be a whole number "
                f"from 1 to {predecessors} (the node's incoming edges)"
            )
        return JoinRule("at_least", k, None, rest)
    if isinstance(rule, dict) and list(rule) == ["condition"]:
        problem = cel_problem(f"{where}: field 'join'", "condition", rule["condition"])
        return problem or JoinRule("condition", 0, str(rule["condition"]), rest)
    return f"{where}: field 'join' is {show(rule)}; expected {_SHAPES}"


def feeders(
    join: str, succ: dict[str, list[str]], pred: dict[str, list[str]], fixed: set[str]
) -> tuple[str, ...]:
    """The nodes whose every forward path leads only into ``join`` (none of them ends
    elsewhere): what a ``join_rest: "cancel"`` join cuts short once it fired. ``fixed``:
    nodes never cut (loops, nodes in a loop's body, human and subworkflow nodes), nor what
    leads to them.

    Upstream of the join, a node is a feeder when each of its successors is the join or a
    feeder; found from the join backwards, each node once its successors are decided."""
    ancestors: set[str] = set()
    stack = [join]
    while stack:
        for p in pred[stack.pop()]:
            if p not in ancestors and p != join:
                ancestors.add(p)
                stack.append(p)
    cut: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in ancestors - cut - fixed:
            if all(n == join or n in cut for n in succ[node]):
                cut.add(node)
                changed = True
    return tuple(sorted(cut))
