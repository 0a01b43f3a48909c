"""Where a finished node's tokens go: static dependents, the branch rules that hold, or the
loop's decision. Pure: the CEL variables come in, the decision comes out.

Every route carries the loop passes of its token's lineage (:attr:`Token.passes`): the
consumed token's, one more on a loop-back. A loop-back past ``max_passes`` (the run-wide
``WFRUNNER_MAX_LOOP_PASSES``) raises :class:`LoopLimitError` instead: a loop whose
condition never turns false, with a huge ``max_iterations`` or nested in another loop,
ends the run rather than running forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wfrunner import conditions
from wfrunner.compiler.ir import IRNode
from wfrunner.engine import scope as scopes
from wfrunner.errors import LoopLimitError


@dataclass(frozen=True)
class Route:
    target: str
    scope: str
    #: loop passes on the lineage of the token taking this route (see Token.passes)
    passes: int = 0

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


def _routes(targets: Iterable[str], scope: str, passes: int = 0) -> tuple[Route, ...]:
    return tuple(Route(t, scope, passes) for t in dict.fromkeys(targets))


def decide(
    node: IRNode,
    scope: str,
    variables: Mapping[str, Any],
    *,
    passes: int = 0,
    max_passes: int | None = None,
) -> Decision:
    """The routing of ``node`` in ``scope`` given its CEL variables (output, input, ...).

    ``passes`` is the consumed token's lineage count; a loop-back beyond ``max_passes``
    (None: no cap) raises :class:`LoopLimitError`.
    """
    if node.loop is not None:
        return _decide_loop(node, scope, variables, passes, max_passes)
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
    return Decision(live=_routes(live, scope, passes), dead=_routes(dead, scope, passes))


def _decide_loop(
    node: IRNode, scope: str, variables: Mapping[str, Any], passes: int, max_passes: int | None
) -> Decision:
    loop = node.loop
    assert loop is not None
    number = scopes.pass_of(scope, node.id)
    own = conditions.Variables.of(variables).bind(iteration=number)
    again = conditions.evaluate_bool(loop.condition, own, where=f"loop {node.id!r}")
    if again and number < loop.max_iterations:
        if max_passes is not None and passes >= max_passes:
            raise LoopLimitError(loop_limit_message(node.id, max_passes))
        back = Route(loop.loop_back_to, scopes.next_pass(scope, node.id), passes + 1)
        return Decision(live=(back,), dead=(), loop=("back", number))
    outside = scopes.leave(scope, node.id)
    taken = loop.timeout_path if again else loop.break_path
    dead = [t for t in _exits(node) if t not in taken]
    outcome = "timeout" if again else "break"
    return Decision(
        live=_routes(taken, outside, passes),
        dead=_routes(dead, outside, passes),
        loop=(outcome, number),
    )


def loop_limit_message(loop_id: str, max_passes: int) -> str:
    return (
        f"loop {loop_id!r} would go round again, but the path to it has gone round loops "
        f"{max_passes:,} times already, the most a run allows (WFRUNNER_MAX_LOOP_PASSES): "
        "make the loop's condition turn false sooner, lower its max_iterations, or raise "
        "WFRUNNER_MAX_LOOP_PASSES"
    )


def dead_successors(node: IRNode, scope: str) -> tuple[Route, ...]:
    """Where a dead path continues after ``node`` is skipped (a dead loop also exits)."""
    if node.loop is not None:
        return _routes(_exits(node), scopes.leave(scope, node.id))
    return _routes(node.successors, scope)


def _exits(node: IRNode) -> tuple[str, ...]:
    """A loop node's forward successors: its exits, and its on_error node."""
    assert node.loop is not None
    return node.loop.exits() + ((node.on_error,) if node.on_error else ())


def decide_failure(node: IRNode, scope: str, passes: int = 0) -> Decision:
    """The routing of a node that failed for good and has an ``on_error`` node: a token
    to that node alone, every other successor dead (its paths skipped, its joins told).
    A loop node's failure leaves the loop, as its exits do."""
    assert node.on_error is not None
    where = scopes.leave(scope, node.id) if node.loop is not None else scope
    dead = [s for s in node.successors if s != node.on_error]
    return Decision(live=_routes([node.on_error], where, passes), dead=_routes(dead, where, passes))
