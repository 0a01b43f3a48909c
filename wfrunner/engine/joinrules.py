"""When a join with a rule fires (docs/dsl.md, "Join rules"): the pure decision.

A join without a rule waits for every predecessor (lua/commit_node.lua decides that one
alone). With a rule, each arrival is one of: it fires the join, it leaves it waiting, it
completes the join without the rule ever holding (the join is dead: skipped, like a join
whose inputs all died), or it comes after the join fired (late: consumed, nothing runs
twice). An ``any``/``at_least`` rule is decided in Lua from the live count; the executor
decides here for a condition (CEL cannot run in Lua), and for the rare arrival that
completes a join without firing it, and commits its decision with the arrivals it read
(the commit is refused should another arrival get in between).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wfrunner import conditions
from wfrunner.compiler.ir import JoinRule

FIRE = "fire"
WAIT = "wait"
DEAD = "dead"
LATE = "late"


def variables(arrived: Mapping[str, Any], dead: int, expected: int) -> dict[str, Any]:
    """The CEL variables of a join condition: ``arrived`` {predecessor: output} of the
    live arrivals so far, ``count`` how many, ``dead`` the dead arrivals (paths not
    taken), ``expected`` the join's predecessors."""
    return {"arrived": dict(arrived), "count": len(arrived), "dead": dead, "expected": expected}


def holds(
    rule: JoinRule, node_id: str, arrived: Mapping[str, Any], dead: int, expected: int
) -> bool:
    """Whether the rule holds over these arrivals. Never with no live arrival: a join
    whose every input died is dead, whatever its rule."""
    if not arrived:
        return False
    if rule.kind == "condition":
        return conditions.evaluate_bool(
            str(rule.condition),
            variables(arrived, dead, expected),
            where=f"node {node_id!r} join condition",
        )
    return len(arrived) >= rule.need


def verdict(
    rule: JoinRule,
    node_id: str,
    arrived: Mapping[str, Any],
    dead: int,
    expected: int,
    fired: bool,
) -> str:
    """What the latest arrival does; ``arrived``/``dead`` include it, ``fired`` whether the
    join fired before it."""
    if fired:
        return LATE
    if holds(rule, node_id, arrived, dead, expected):
        return FIRE
    return DEAD if len(arrived) + dead >= expected else WAIT


def never_held(rule: JoinRule, live: int, expected: int) -> str:
    """The reason a join is skipped: every input arrived and its rule never held."""
    shape = {
        "any": "any",
        "at_least": f"at_least {rule.need}",
        "condition": f"condition {rule.condition!r}",
    }[rule.kind]
    return (
        f"join rule {shape} never held: every input arrived ({live} of {expected} live) "
        "without firing it"
    )
