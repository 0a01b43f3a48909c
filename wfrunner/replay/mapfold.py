"""Folding a map node's events (docs/map.md) as lua/map_commit.lua changed Redis.

``map_started`` consumes the head and emits the first ``concurrency`` items;
``map_item`` consumes item ``index`` and emits the item ``concurrency`` further on and,
with the last result, the finish token (whose ``node_completed`` consumes it). Items and
the finish token are not ``token_emitted`` events, so they move the counter and the
outbox but not the ``tokens_emitted`` / ``tokens_consumed`` statistics (the run document
counts token_emitted events). Item tokens are rebuilt without their element's payload
ref, which no event names (their keys do not depend on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfrunner.engine import mapping
from wfrunner.engine.tokens import Token

if TYPE_CHECKING:
    from wfrunner.replay.fold import ReplayedState

Event = Mapping[str, Any]


@dataclass
class FoldedMap:
    head: Token
    total: int
    cap: int
    input_ref: str
    done: set[int] = field(default_factory=set)


def _emit(state: ReplayedState, token: Token) -> None:
    state.counter += 1
    state.pending[token.key] = token


def _take(state: ReplayedState, token: Token) -> None:
    state.counter -= 1
    state.applied.add(token.op_key("advance"))
    state.pending.pop(token.key, None)


def map_started(state: ReplayedState, evt: Event) -> None:
    head = Token.from_dict(evt["token"])
    folded = FoldedMap(head, int(evt["total"]), int(evt["concurrency"]), str(evt["input_ref"]))
    state.maps[mapping.instance(head.to_node, head.scope)] = folded
    _take(state, head)
    state.tokens_consumed += 1  # the head was a token_emitted
    for i in mapping.first_items(folded.total, folded.cap):
        _emit(state, mapping.item_token(head, i, ""))


def map_item(state: ReplayedState, evt: Event) -> None:
    folded = state.maps.get(mapping.instance(str(evt["node"]), str(evt.get("scope") or "")))
    if folded is None:
        state.notes.append(f"event {state.events}: map_item of a map never started")
        return
    index = int(evt["index"])
    folded.done.add(index)
    state.node(str(evt["node"])).failed = False  # done after a failure: a retried letter
    _take(state, mapping.item_token(folded.head, index, ""))
    following = mapping.next_item(index, folded.cap, folded.total)
    if following is not None:
        _emit(state, mapping.item_token(folded.head, following, ""))
    if len(folded.done) == folded.total:
        _emit(state, mapping.finish_token(folded.head, folded.input_ref))
        state.tokens_consumed -= 1  # its node_completed counts it; it was no token_emitted
