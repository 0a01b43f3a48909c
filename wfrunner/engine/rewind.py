"""What ``wfrunner rerun --from NODE`` discards: the node and everything downstream of it.

A rerun (redrive) rebuilds the run's hot state from its event log
(:func:`wfrunner.recovery.rebuild`). Plain, that gives back exactly the state the run
ended in: every token emitted and never consumed is pending again, the failed node's
among them. ``--from NODE`` also discards, from the history before the rerun, what NODE
and every node downstream of it did (their completions, the tokens they emitted, the
join arrivals they made): the tokens that reached NODE become pending again, NODE runs
again, and so does all that follows it, each on fresh inputs; the nodes upstream keep
their outputs. The event log itself is never changed: the ``run_redriven`` event that
names NODE tells every later rebuild (after a Redis loss too) what to leave out.

Pure: IR and events in, events out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wfrunner.compiler.ir import IR
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError, NotFoundError

Event = dict[str, Any]

#: the event a rerun appends; ``from`` names the node it reruns from (None: plain)
REDRIVEN = "run_redriven"


def downstream(ir: IR, node_id: str) -> frozenset[str]:
    """``node_id`` and every node a token can reach from it (loop-backs included)."""
    seen = {node_id}
    work = [node_id]
    while work:
        node = ir.nodes[work.pop()]
        targets = list(node.successors)
        if node.loop:
            targets.append(node.loop.loop_back_to)
        for target in targets:
            if target not in seen:
                seen.add(target)
                work.append(target)
    return frozenset(seen)


def _predecessors(ir: IR) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {n: set() for n in ir.nodes}
    for node in ir.nodes.values():
        targets = list(node.successors)
        if node.loop:
            targets.append(node.loop.loop_back_to)
        for target in targets:
            found[target].add(node.id)
    return found


def check_from(ir: IR, events: Sequence[Event], node_id: str) -> frozenset[str]:
    """The nodes a rerun from ``node_id`` runs again, or the error saying why it cannot:
    the node is unknown, never completed, inside a loop, or something downstream of it is
    also reached from a node that is not (that node would not run again to reach it)."""
    if node_id not in ir.nodes:
        raise NotFoundError(
            f"the workflow has no node '{node_id}' (its nodes: {', '.join(sorted(ir.nodes))})"
        )
    again = downstream(ir, node_id)
    if node_id in _loop_bodies(ir):
        raise ConflictError(
            f"node '{node_id}' is inside a loop: a rerun cannot start in the middle of one; "
            "rerun from a node before the loop, or without --from"
        )
    if not any(e["type"] == "node_completed" and e.get("node") == node_id for e in events):
        raise ConflictError(
            f"node '{node_id}' never completed in this run: nothing of it to run again; "
            "rerun without --from (the failed nodes run again), or name a node that completed"
        )
    mapped = sorted(n for n in again if ir.nodes[n].config.get("map_over"))
    if mapped:
        raise ConflictError(
            f"node '{mapped[0]}' is a map node and would run again after '{node_id}': a rerun "
            "cannot discard a map node's elements; rerun from a node after it, or without "
            "--from"
        )
    preds = _predecessors(ir)
    for target in sorted(again - {node_id}):
        if ir.nodes[target].wait_for_all:
            continue  # a join keeps the arrivals from outside; the rerun completes it
        outside = sorted(preds[target] - again)
        if outside:
            raise ConflictError(
                f"node '{target}' runs again after '{node_id}' but is also reached from "
                f"'{outside[0]}', which would not run again: rerun from a node upstream of "
                "both, or without --from"
            )
    return again


def _loop_bodies(ir: IR) -> set[str]:
    """The nodes between a loop's ``loop_back_to`` and the loop node, both included."""
    preds = _predecessors(ir)
    inside: set[str] = set()
    for node in ir.nodes.values():
        if not node.loop:
            continue
        ahead = downstream(ir, node.loop.loop_back_to)
        behind = {node.id}
        work = [node.id]
        while work:
            for pred in preds[work.pop()]:
                if pred not in behind:
                    behind.add(pred)
                    work.append(pred)
        inside |= ahead & behind
    return inside


def discarded(ir: IR, again: frozenset[str], start: str, evt: Event) -> bool:
    """Whether a rerun from ``start`` (running ``again`` anew) leaves ``evt`` out of the
    state it rebuilds: the completions of the nodes that run again, the tokens they
    emitted, their join arrivals, and the token that fired a join among them (the join
    fires again when the arrivals it lost come back). ``start``'s own join, if it is one,
    keeps its fire token: nothing upstream runs again to fire it."""
    kind = evt["type"]
    if kind == "node_completed":
        return evt.get("node") in again
    if kind == "join_arrived":
        return evt.get("from") in again
    if kind != "token_emitted":
        return False
    if evt.get("from") in again:
        return True
    token = Token.from_dict(evt["token"]) if evt.get("token") else None
    if token is None or token.to_node == start or token.to_node not in again:
        return False
    target = ir.nodes[token.to_node]
    return (
        target.wait_for_all
        and token.payload_ref is None
        and token.from_node in (target.dependencies)
    )


def effective(ir: IR, events: Iterable[Event]) -> list[Event]:
    """The events a rebuild reads: each rerun from a node discards, among the events
    before it, what :func:`discarded` says."""
    kept: list[Event] = []
    for evt in events:
        start = evt.get("from") if evt["type"] == REDRIVEN else None
        if isinstance(start, str) and start in ir.nodes:
            again = downstream(ir, start)
            kept = [e for e in kept if not discarded(ir, again, start, e)]
        kept.append(evt)
    return kept


#: the fields of a run_redriven event the run document lists
_REDRIVE_FIELDS = ("attempt", "from", "by", "reason", "ended", "error", "t")


def redrives(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The run document's ``redrives``: each rerun, oldest first (attempt, from, by, reason,
    how and why the attempt before it ended, when)."""
    return [{k: evt.get(k) for k in _REDRIVE_FIELDS} for evt in events if evt["type"] == REDRIVEN]
