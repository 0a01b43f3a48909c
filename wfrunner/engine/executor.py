"""Processing one token: the body of ``wfrunner.execute_node``, without Celery.

The order of steps is what makes at-least-once delivery safe:

1. ``begin``: is the run still running, and was this token already committed? A token
   committed by an earlier delivery is not run again; its recorded emissions are returned
   for dispatch (the earlier delivery may have died before dispatching them).
2. A join records the arrival; only the arrival that completed the join fires it.
3. The node runs (handler or built-in). Its routing is decided, and the paths not taken
   are propagated as dead: skipped nodes, dead join arrivals, and a fire token for a join
   that the dead arrival completed.
4. ``commit``: output, emitted tokens, counter delta (emitted - 1) and events, atomically
   and at most once per token. Only then are the emitted tokens dispatched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wfrunner import builtins, handlers
from wfrunner.compiler.ir import IR, IRNode
from wfrunner.engine import scope as scopes
from wfrunner.engine.events import event
from wfrunner.engine.payloads import encode_payload
from wfrunner.engine.routing import Decision, Route, dead_successors, decide
from wfrunner.engine.runstate import DEAD, RUNNING, RunState
from wfrunner.engine.tokens import Token
from wfrunner.errors import WfrunnerError


@dataclass
class Outcome:
    #: tokens to send as execute_node messages
    dispatch: list[Token] = field(default_factory=list)
    #: whether to send check_completion for the run
    check_completion: bool = False
    #: why the token was dropped (the run ended or is gone), for the log
    ignored: str | None = None
    #: the error that failed the run
    failed: str | None = None


def describe(exc: BaseException) -> str:
    if isinstance(exc, WfrunnerError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Executor:
    def __init__(self, state: RunState, max_payload_bytes: int, http_timeout_s: float = 30.0):
        self.state = state
        self.max_payload_bytes = max_payload_bytes
        self.http_timeout_s = http_timeout_s

    def process(self, ir: IR, token: Token) -> Outcome:
        node = ir.nodes.get(token.to_node)
        if node is None:
            return Outcome(ignored=f"workflow has no node {token.to_node!r}")
        joining = node.wait_for_all and token.from_node in node.dependencies
        started = None if joining else event("node_started", node.id, scope=token.scope)
        begin = self.state.begin(token, time.time(), started)
        if begin.state != RUNNING:
            return Outcome(ignored=f"run is {begin.state}")
        if begin.committed is not None:
            return Outcome(dispatch=begin.committed, check_completion=node.is_terminal)
        events: list[dict[str, Any]] = []
        if joining:
            fired = self._arrive(node, token)
            if isinstance(fired, Outcome):
                return fired
            node_input = fired
            events.append(event("node_started", node.id, scope=token.scope))
        else:
            node_input = begin.input if token.payload_ref else begin.inputs
        return self._execute(ir, node, token, node_input, begin.inputs, events)

    def _arrive(self, node: IRNode, token: Token) -> Outcome | dict[str, Any]:
        """Record a join arrival; the merged input when this arrival fires the join."""
        assert token.from_node is not None
        instance = f"{node.id}|{token.scope}"
        value = token.payload_ref or DEAD
        arrival = self.state.arrive(
            token.run_id, instance, token.from_node, value, len(node.dependencies)
        )
        if arrival.state != RUNNING:
            return Outcome(ignored=f"run is {arrival.state}")
        if arrival.complete and arrival.finisher == token.from_node:
            return self.state.join_inputs(token.run_id, instance, node.dependencies)
        arrived = event(
            "join_arrived",
            node.id,
            scope=token.scope,
            live=value != DEAD,
            **{"from": token.from_node},
        )
        commit = self.state.commit(token, [], time.time(), [arrived], delta=-1)
        return Outcome(check_completion=commit.hit_zero)

    def _execute(
        self,
        ir: IR,
        node: IRNode,
        token: Token,
        node_input: Any,
        inputs: Any,
        events: list[dict[str, Any]],
    ) -> Outcome:
        variables: dict[str, Any] = {
            "input": node_input,
            "inputs": inputs,
            "iteration": scopes.pass_of(token.scope, node.id)
            if node.loop
            else scopes.innermost(token.scope),
            "ctx": self._context(node, token.run_id),
        }
        try:
            output = self._run(node, node_input, variables)
            variables["output"] = output
            ref, text = encode_payload(output, self.max_payload_bytes)
            decision = decide(node, token.scope, variables)
            emitted = [
                token.child(r.target, ref, iteration=r.iteration, scope=r.scope)
                for r in decision.live
            ]
            fires, skipped = self._propagate_dead(ir, token, node.id, decision.dead)
        except Exception as exc:  # any handler error fails the node, never the worker
            return self._fail(node, token, describe(exc))
        emitted += fires
        events.append(event("node_completed", node.id, scope=token.scope, output_ref=ref))
        events += _loop_events(node, decision) + skipped
        events += [
            event(
                "token_emitted", t.from_node, to=t.to_node, scope=t.scope, **{"from": t.from_node}
            )
            for t in emitted
        ]
        commit = self.state.commit(token, emitted, time.time(), events, output=(ref, text))
        if commit.state != RUNNING:
            return Outcome(ignored=f"run is {commit.state}")
        return Outcome(
            dispatch=commit.emitted, check_completion=node.is_terminal or commit.hit_zero
        )

    def _context(self, node: IRNode, run_id: str) -> Any:
        return self.state.context(run_id) if _uses_ctx(node) else {}

    def _run(self, node: IRNode, node_input: Any, variables: dict[str, Any]) -> Any:
        if node.function_name:
            handler: Callable[[Any, dict[str, Any]], Any] = handlers.get_handler(node.function_name)
            return handler(node_input, node.config)
        timeout = node.timeout_ms / 1000 if node.timeout_ms else self.http_timeout_s
        return builtins.run_builtin(
            node.id,
            node.type,
            node.config,
            node_input,
            variables,
            timeout_s=timeout,
            max_bytes=self.max_payload_bytes,
            join=node.wait_for_all,
        )

    def _propagate_dead(
        self, ir: IR, token: Token, source: str, routes: tuple[Route, ...]
    ) -> tuple[list[Token], list[dict[str, Any]]]:
        """Skip what only dead paths reach; returns fire tokens for joins completed here."""
        work = [(source, r) for r in routes]
        fires: list[Token] = []
        events: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        while work:
            src, route = work.pop(0)
            target = ir.nodes[route.target]
            if target.wait_for_all and src in target.dependencies:
                instance = f"{target.id}|{route.scope}"
                arrival = self.state.arrive(
                    token.run_id, instance, src, DEAD, len(target.dependencies)
                )
                events.append(
                    event("join_arrived", target.id, scope=route.scope, live=False, **{"from": src})
                )
                if not (arrival.complete and arrival.finisher == src):
                    continue
                if self.state.join_inputs(token.run_id, instance, target.dependencies):
                    fire = Token(
                        token.run_id,
                        src,
                        target.id,
                        None,
                        token.hop + 1,
                        route.iteration,
                        route.scope,
                    )
                    fires.append(fire)
                    continue
            if (target.id, route.scope) in seen:
                continue
            seen.add((target.id, route.scope))
            events.append(event("node_skipped", target.id, scope=route.scope))
            work += [(target.id, r) for r in dead_successors(target, route.scope)]
        return fires, events

    def _fail(self, node: IRNode, token: Token, reason: str) -> Outcome:
        error = f"node {node.id!r} failed: {reason.removeprefix(f'node {node.id!r}: ')}"
        self.state.end(
            token.run_id,
            "failed",
            error,
            [
                event("node_failed", node.id, scope=token.scope, error=error),
                event("run_failed", None, error=error),
            ],
        )
        return Outcome(failed=error, check_completion=True)


def _loop_events(node: IRNode, decision: Decision) -> list[dict[str, Any]]:
    if decision.loop is None:
        return []
    outcome, number = decision.loop
    return [event("loop_decided", node.id, outcome=outcome, **{"pass": number})]


def _uses_ctx(node: IRNode) -> bool:
    texts = [str(node.config.get(k, "")) for k in ("expression", "filter_expression")]
    if node.branch:
        texts += [r.condition for r in node.branch.rules]
    if node.loop:
        texts.append(node.loop.condition)
    return any("ctx" in text for text in texts)
