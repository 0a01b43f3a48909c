"""Delivering a map node's tokens (see :mod:`wfrunner.engine.mapping` for the model).

The executor hands a map node's delivery here once it holds the token's lease and knows
the node's input; what a delivery does is then one of:

- head: evaluate ``map_over``; a result that is not a list, or longer than
  ``WFRUNNER_MAX_MAP_ITEMS``, fails the node (no retry would change it); an empty list
  completes the node at once with ``[]``; else the elements are stored and the first
  ``max_concurrency`` items emitted (lua/map_commit.lua);
- item: run the handler on the element, under the node's retry policy (an element that
  fails for good fails the node and the run), and record its result;
- finish: complete the node with the ordered results, as any node completes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wfrunner import conditions
from wfrunner.compiler.ir import IR, IRNode
from wfrunner.engine import mapping, mapstate
from wfrunner.engine import scope as scopes
from wfrunner.engine.events import event
from wfrunner.engine.payloads import canonical_json, encode_payload, payload_ref
from wfrunner.engine.runstate import LIVE, PAUSED, Begin, Commit
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConditionError, PayloadError

if TYPE_CHECKING:
    from wfrunner.engine.executor import Executor, Outcome


@dataclass(frozen=True)
class _Delivery:
    """One delivery of a map node's token, as the executor hands it over."""

    ex: Executor
    ir: IR
    node: IRNode
    token: Token
    node_input: Any
    begin: Begin
    #: events its commit appends first (a join's node_started)
    events: list[dict[str, Any]]
    nonce: str

    def execute(self, output: list[Any]) -> Outcome:
        """Complete the node with ``output``, as any node completes (routing included)."""
        d = self
        return d.ex._execute(
            d.ir, d.node, d.token, d.node_input, d.begin, d.events, d.nonce, output
        )

    def commit(self, kind: str, work: dict[str, Any], events: list[dict[str, Any]]) -> Commit:
        token, begin = self.token, self.begin
        return mapstate.commit(
            self.ex.state,
            token,
            kind,
            mapping.instance(self.node.id, token.scope),
            work,
            events,
            nonce=self.nonce,
            holder=begin.holder,
            epoch=begin.epoch,
            now=time.time(),
        )


def deliver(
    ex: Executor,
    ir: IR,
    node: IRNode,
    token: Token,
    node_input: Any,
    begin: Begin,
    events: list[dict[str, Any]],
    nonce: str,
) -> Outcome:
    d = _Delivery(ex, ir, node, token, node_input, begin, events, nonce)
    role = mapping.role(node.id, token)
    if role.kind == mapping.ITEM:
        assert role.index is not None
        return _item(d, role.index)
    if role.kind == mapping.FINISH:
        where = mapping.instance(node.id, token.scope)
        return d.execute(mapstate.results(ex.state, token.run_id, where))
    return _head(d)


def _variables(token: Token, node_input: Any, begin: Begin) -> dict[str, Any]:
    return {
        "input": node_input,
        "inputs": begin.inputs,
        "iteration": scopes.innermost(token.scope),
        "ctx": begin.context or {},
    }


def elements(node: IRNode, variables: dict[str, Any], max_items: int) -> list[Any]:
    """The list ``map_over`` gives; ConditionError (naming the node and field) when the
    expression fails or gives no list, or a list over ``max_items``."""
    expression = str(node.config["map_over"])
    where = f"node {node.id!r}: config.map_over"
    value = conditions.evaluate(expression, variables, where=where)
    if not isinstance(value, list):
        raise ConditionError(expression, f"gave {_json_kind(value)}, not a list", where=where)
    if len(value) > max_items:
        raise ConditionError(
            expression,
            f"gave {len(value)} elements, over the limit of {max_items} "
            "(WFRUNNER_MAX_MAP_ITEMS); split the list or raise the limit",
            where=where,
        )
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an object" if isinstance(value, dict) else "a string"


def _head(d: _Delivery) -> Outcome:
    ex, node, token, begin = d.ex, d.node, d.token, d.begin
    limit = ex.limits.max_payload_bytes
    try:
        items = elements(node, _variables(token, d.node_input, begin), ex.limits.max_map_items)
        encoded = [encode_payload(e, limit) for e in items]
        input_ref, input_text = encode_payload(d.node_input, limit)
    except (ConditionError, PayloadError) as exc:  # deterministic: a retry gives the same
        return ex._fail(node, token, str(exc), begin.attempt)
    if not items:
        return d.execute([])
    list_text = canonical_json(items)
    list_ref = payload_ref(list_text)
    cap = mapping.concurrency(node)
    started = event(
        "map_started",
        node.id,
        scope=token.scope,
        total=len(items),
        concurrency=cap,
        output_ref=list_ref,
        input_ref=input_ref,
        token=token.to_dict(),
    )
    work = {
        "total": len(items),
        "fields": mapping.fields(token, [ref for ref, _ in encoded], input_ref),
        "payloads": {**dict(encoded), input_ref: input_text, list_ref: list_text},
        "emit": mapping.first_items(len(items), cap),
    }
    return _committed(d.commit(mapstate.START, work, [*d.events, started]), None)


def _item(d: _Delivery, index: int) -> Outcome:
    from wfrunner.engine.executor import _handler_traceback, describe

    ex, node, token, begin, element = d.ex, d.node, d.token, d.begin, d.node_input
    try:
        output = ex._run(node, element, _variables(token, element, begin), token, begin)
        ref, text = encode_payload(
            output, ex.limits.max_payload_bytes, warn_bytes=ex.limits.payload_warn_bytes
        )
    except Exception as exc:  # a handler error fails this element, never the worker
        trace = _handler_traceback(node, exc)
        reason = f"element {index}: {describe(exc, node)}"  # which one, in the error
        return ex._handler_failed(node, token, reason, begin, trace)
    done = event("map_item", node.id, scope=token.scope, index=index, output_ref=ref)
    work = {"index": index, "cap": mapping.concurrency(node), "ref": ref, "text": text}
    return _committed(d.commit(mapstate.ITEM, work, [done]), "completed")


def _committed(commit: Commit, ran: str | None) -> Outcome:
    from wfrunner.engine.executor import Outcome, _dropped

    if commit.state not in LIVE:
        return Outcome(ignored=_dropped(commit.state))
    if not commit.mine:
        return Outcome(ignored="another delivery of this token committed first")
    # the script's table has no order: items go out in index order, first things first;
    # a paused run's wait in its outbox: its resume publishes them
    emitted = [] if commit.state == PAUSED else commit.emitted
    sent = sorted(emitted, key=lambda t: mapping.role(t.to_node, t).index or 0)
    # a retry of this delivery's own commit (a lost reply) ran nothing new
    return Outcome(dispatch=sent, flush=commit.flush_due, ran=ran if commit.changed else None)
