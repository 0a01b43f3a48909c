"""Which of the tokens a node emitted its task runs itself, and which it publishes.

A task runs its node, then goes on with tokens its nodes emitted for up to
``WFRUNNER_INLINE_MS`` (see ``carry`` in :mod:`wfrunner.tasks.execution`): a message and a
task less each. It always goes on with one of them when it has nothing else to run (a
chain is one task). A sibling, which would otherwise run in parallel on another worker,
is kept only when waiting for this task costs it less than a message would: its node took
at most :data:`QUICK_S` the last times this process ran it, and the siblings kept wait at
most :data:`HOLD_S` in all. A node never seen here, a slow one, or one with ``timeout_ms``
(only its own task carries its time limits) is published at once. So ``A -> (B, C) -> D``
with quick nodes is one task, ``start_run``'s; with slow ones, B and C still run side
by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from wfrunner.compiler.ir import IR
from wfrunner.engine.tokens import Token

#: seconds a node may have taken (its mean here) for a sibling to wait for this task
QUICK_S = 0.005
#: seconds of predicted work the siblings a task keeps may add up to
HOLD_S = 0.020
#: weight of the newest duration in a node's mean
_WEIGHT = 0.3
#: nodes remembered per process (the memory is cleared past this)
_REMEMBERED = 10_000


class Durations:
    """How long each node took in this process, as an exponentially weighted mean of the
    seconds its tokens spent in the engine (commit and handler included)."""

    def __init__(self) -> None:
        self._mean: dict[tuple[str, str], float] = {}

    def record(self, workflow_id: str, node_id: str, seconds: float) -> None:
        key = (workflow_id, node_id)
        if key not in self._mean and len(self._mean) >= _REMEMBERED:
            self._mean.clear()
        last = self._mean.get(key)
        self._mean[key] = seconds if last is None else last + _WEIGHT * (seconds - last)

    def predicted(self, workflow_id: str, node_id: str) -> float | None:
        """The node's mean duration here; None when this process never ran it."""
        return self._mean.get((workflow_id, node_id))


def timed(token: Token) -> str:
    """What a token's duration is measured as: its node, or ``<node>[]`` for a map node's
    item (engine/mapping.py), whose handler may take far longer than the quick delivery
    that emitted it: the items of a slow map run side by side, not one after another."""
    source = token.from_node
    if source and source.startswith(f"{token.to_node}[") and source.endswith("]"):
        return f"{token.to_node}[]"
    return token.to_node


def plan(
    ir: IR,
    workflow_id: str,
    emitted: Iterable[Token],
    queued: Sequence[Token],
    durations: Durations,
) -> tuple[list[Token], list[Token]]:
    """(tokens this task runs after those ``queued``, tokens to publish now)."""
    keep: list[Token] = []
    publish: list[Token] = []
    held = sum(durations.predicted(workflow_id, timed(t)) or 0.0 for t in queued)
    for token in emitted:
        node = ir.nodes.get(token.to_node)
        if node is None or node.timeout_ms:
            publish.append(token)
            continue
        if not queued and not keep:  # nothing else to run: go on with this one
            keep.append(token)
            continue
        seconds = durations.predicted(workflow_id, timed(token))
        if seconds is not None and seconds <= QUICK_S and held + seconds <= HOLD_S:
            keep.append(token)
            held += seconds
        else:
            publish.append(token)
    return keep, publish
