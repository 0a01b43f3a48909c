"""Where a finished node's tokens go: static dependents, the branch rules that hold, or the
loop's decision. Pure: the CEL variables come in, the decision comes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wfrunner import conditions
from wfrunner.compiler.ir import IRNode
from wfrunner.engine import scope as scopes


@dataclass(frozen=True)
class Route:
    target: str
    scope: str

    @property
    def iteration(self) -> int:
        return scopes.innermost(self.scope)


@dataclass(frozen=True)
class Decision:
    #: tokens to emit
    live: tuple[Route, ...]
    #: successors not taken: their paths are dead (dead-path elimination)
    dead: tuple[Route, ...]
    #: for loop nodes: ("back" | "break" | "timeout", the pass that decided)
    loop: tuple[str, int] | None = None


def _routes(targets: Iterable[str], scope: str) -> tuple[Route, ...]:
    return tuple(Route(t, scope) for t in dict.fromkeys(targets))


def decide(node: IRNode, scope: str, variables: Mapping[str, Any]) -> Decision:
    """The routing of ``node`` in ``scope`` given its CEL variables (output, input, ...)."""
    if node.loop is not None:
        return _decide_loop(node, scope, variables)
    live = list(node.dependents)
    if node.branch is not None:
        cel = conditions.Variables.of(variables)  # converted once for all the rules
        held = [
            target
            for rule in node.branch.rules
            if conditions.evaluate_bool(
                rule.condition, cel, where=f"edge {node.id}->{','.join(rule.next_nodes)}"
            )
            for target in rule.next_nodes
        ]
        live += held or list(node.branch.default)
    taken = set(live)
    dead = [s for s in node.successors if s not in taken]
    return Decision(live=_routes(live, scope), dead=_routes(dead, scope))


def _decide_loop(node: IRNode, scope: str, variables: Mapping[str, Any]) -> Decision:
    loop = node.loop
    assert loop is not None
    number = scopes.pass_of(scope, node.id)
    own = conditions.Variables.of(variables).bind(iteration=number)
    again = conditions.evaluate_bool(loop.condition, own, where=f"loop {node.id!r}")
    if again and number < loop.max_iterations:
        back = Route(loop.loop_back_to, scopes.next_pass(scope, node.id))
        return Decision(live=(back,), dead=(), loop=("back", number))
    outside = scopes.leave(scope, node.id)
    taken = loop.timeout_path if again else loop.break_path
    dead = [t for t in loop.exits() if t not in taken]
    outcome = "timeout" if again else "break"
    return Decision(
        live=_routes(taken, outside), dead=_routes(dead, outside), loop=(outcome, number)
    )


def dead_successors(node: IRNode, scope: str) -> tuple[Route, ...]:
    """Where a dead path continues after ``node`` is skipped (a dead loop also exits)."""
    if node.loop is not None:
        return _routes(node.loop.exits(), scopes.leave(scope, node.id))
    return _routes(node.successors, scope)
