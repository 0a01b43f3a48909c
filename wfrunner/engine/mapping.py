"""Dynamic fan-out: a node with ``config.map_over`` runs once per element of a list.

Three kinds of token reach a map node ``M`` (one instance per loop scope):

- the head: the token that reached ``M`` like any other. Its delivery evaluates
  ``map_over``, stores one item token per element and emits the first
  ``max_concurrency`` of them (lua/map_commit.lua);
- item ``i``: runs the handler (or built-in) on element ``i``. Its commit records the
  result at index ``i`` and emits item ``i + max_concurrency``, so at most
  ``max_concurrency`` items are in flight at any time, deterministically;
- the finish token: emitted by the commit that records the last result; its delivery
  completes ``M`` with the ordered list of results as its output, routes, and emits
  ``M``'s successors like any node's commit.

An item's and the finish token's identity differ from every other token by their source,
``M[<i>]`` and ``M[*]`` (node ids cannot hold brackets), so a redelivered item maps to the
same op keys and two items never collide; they keep the head's scope, so a map node in a
loop has one instance per pass.

This module is the pure part: identities, which item comes next, what a rebuild from the
event log finds in flight.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from wfrunner.compiler.ir import IRNode
from wfrunner.engine.tokens import Token

#: items in flight at once when ``config.max_concurrency`` is not given
DEFAULT_CONCURRENCY = 10
#: elements a map_over list may have (WFRUNNER_MAX_MAP_ITEMS)
DEFAULT_MAX_ITEMS = 10_000
#: the finish token's field name in the maps hash (item tokens use their index)
FIN = "fin"

HEAD, ITEM, FINISH = "head", "item", "finish"


def is_map(node: IRNode) -> bool:
    return node.config.get("map_over") is not None


def concurrency(node: IRNode) -> int:
    value = node.config.get("max_concurrency", DEFAULT_CONCURRENCY)
    return int(value)


def item_source(node_id: str, index: int) -> str:
    """The ``from_node`` of item ``index`` of map node ``node_id``."""
    return f"{node_id}[{index}]"


def finish_source(node_id: str) -> str:
    return f"{node_id}[*]"


@dataclass(frozen=True)
class Role:
    kind: str
    #: the element's index (an item)
    index: int | None = None


def role(node_id: str, token: Token) -> Role:
    """Which of a map node's tokens ``token`` is (see the module's docstring)."""
    source = token.from_node or ""
    if not source.startswith(f"{node_id}[") or not source.endswith("]"):
        return Role(HEAD)
    inside = source[len(node_id) + 1 : -1]
    if inside == "*":
        return Role(FINISH)
    return Role(ITEM, int(inside))


def quiet(node: IRNode, token: Token) -> bool:
    """Whether a delivery of ``token`` appends no ``node_started`` event: an item or the
    finish token of a map node (only the head starts the node; 1,000 items would
    otherwise write 1,000 events more)."""
    return is_map(node) and role(node.id, token).kind != HEAD


def head_reads(node: IRNode, token: Token, variable: str) -> bool:
    """Whether ``token`` is a map node's head whose ``map_over`` may read ``variable``
    (``inputs``, ``ctx``): only the head evaluates it, so its items do not fetch them."""
    over = node.config.get("map_over")
    return over is not None and variable in str(over) and role(node.id, token).kind == HEAD


def instance(node_id: str, scope: str) -> str:
    return f"{node_id}|{scope}"


def item_token(head: Token, index: int, ref: str) -> Token:
    """Item ``index``'s token, whose input is the element stored under ``ref``."""
    return _own(head, item_source(head.to_node, index), ref, 1)


def finish_token(head: Token, input_ref: str) -> Token:
    """The finish token: its input is the head's (``input_ref``), its output the list."""
    return _own(head, finish_source(head.to_node), input_ref, 2)


def _own(head: Token, source: str, ref: str, hops: int) -> Token:
    """A token the map node sends itself: the head's scope, iteration and passes."""
    return Token(
        head.run_id,
        source,
        head.to_node,
        ref,
        head.hop + hops,
        head.iteration,
        head.scope,
        head.passes,
    )


def first_items(total: int, cap: int) -> list[int]:
    """The items the head emits."""
    return list(range(min(total, cap)))


def next_item(index: int, cap: int, total: int) -> int | None:
    """The item whose token item ``index``'s commit emits (None: no item is left)."""
    following = index + cap
    return following if following < total else None


def emitted_items(total: int, cap: int, done: Iterable[int]) -> set[int]:
    """The items emitted once the items ``done`` have committed (in any order)."""
    emitted = set(first_items(total, cap))
    emitted.update(j for j in (next_item(i, cap, total) for i in done) if j is not None)
    return emitted


def in_flight(total: int, cap: int, done: Collection[int]) -> list[int]:
    """Items emitted and not done: what a rebuilt run publishes again."""
    return sorted(emitted_items(total, cap, done) - set(done))


def ordered(results: dict[int, Any], total: int) -> list[Any]:
    """The node's output: element ``i``'s result at index ``i``."""
    missing = [i for i in range(total) if i not in results]
    if missing:
        raise ValueError(f"map results missing for items {missing[:10]}")
    return [results[i] for i in range(total)]


def fields(head: Token, refs: list[str], input_ref: str) -> dict[str, str]:
    """The maps-hash fields of an instance (see lua/map_commit.lua): every item's token
    and key, and the finish token's."""
    where = instance(head.to_node, head.scope)
    tokens = {str(i): item_token(head, i, ref) for i, ref in enumerate(refs)}
    tokens[FIN] = finish_token(head, input_ref)
    out: dict[str, str] = {}
    for name, token in tokens.items():
        out[f"{where}|t|{name}"] = _dump(token.to_dict())
        out[f"{where}|k|{name}"] = token.key
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
