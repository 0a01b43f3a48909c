"""The benchmark's workflows: every function node runs ``bench.noop``."""

from __future__ import annotations

import itertools
from typing import Any

NOOP = {"function_name": "bench.noop"}


def node(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": dict(NOOP), **extra}


def edge(source: str, target: str, condition: str | None = None) -> dict[str, Any]:
    return {"from": source, "to": target, **({"condition": condition} if condition else {})}


def workflow(name: str, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": f"bench-{name}"}, "nodes": nodes, "edges": edges}


def chain(count: int) -> dict[str, Any]:
    ids = [f"n{i}" for i in range(count)]
    edges = [edge(a, b) for a, b in itertools.pairwise(ids)]
    return workflow(f"chain-{count}", [node(i) for i in ids], edges)


def diamond() -> dict[str, Any]:
    """A -> (B, C) -> D: Celery's chord A | group(B, C) | D."""
    edges = [edge("A", "B"), edge("A", "C"), edge("B", "D"), edge("C", "D")]
    return workflow("diamond", [node(n) for n in "ABCD"], edges)


def fan_out(width: int) -> dict[str, Any]:
    """A root, ``width`` parallel nodes, and one join of them all."""
    middle = [f"p{i}" for i in range(width)]
    nodes = [node("root"), *(node(m) for m in middle), node("join")]
    edges = [edge("root", m) for m in middle] + [edge(m, "join") for m in middle]
    return workflow(f"fan-out-{width}", nodes, edges)


def mixed() -> dict[str, Any]:
    """Ten nodes: a fan-out of three, a two-node branch, an exclusive branch (``hi`` is
    taken, ``lo`` ends SKIPPED) and a four-way join of the live arrivals, then ``end``."""
    names = ["start", "a1", "a2", "b1", "route", "hi", "lo", "c1", "join", "end"]
    edges = [
        edge("start", "a1"),
        edge("start", "b1"),
        edge("start", "c1"),
        edge("a1", "a2"),
        edge("b1", "route"),
        edge("route", "hi", "output.x > 0"),
        edge("route", "lo", "output.x <= 0"),
        edge("a2", "join"),
        edge("hi", "join"),
        edge("lo", "join"),
        edge("c1", "join"),
        edge("join", "end"),
    ]
    return workflow("mixed-10", [node(n) for n in names], edges)


def loop(passes: int) -> dict[str, Any]:
    """``start``, then ``body`` -> ``loop`` round ``passes`` times, then ``done``."""
    looping = {
        "id": "loop",
        "type": "loop",
        "config": {
            **NOOP,
            "max_iterations": passes + 5,
            "condition": f"iteration < {passes}",
            "loop_back_to": "body",
            "break_path": ["done"],
        },
    }
    nodes = [node("start"), node("body"), looping, node("done")]
    return workflow(f"loop-{passes}", nodes, [edge("start", "body"), edge("body", "loop")])


def map_items(count: int) -> dict[str, Any]:
    """``items`` makes a list of ``count``; ``each`` runs ``bench.noop`` on every element,
    all in flight at once (``max_concurrency``), then ``end``."""
    source = {
        "id": "items",
        "type": "function",
        "config": {"function_name": "bench.items", "count": count},
    }
    each = node("each")
    each["config"].update(map_over="input.items", max_concurrency=count)
    edges = [edge("items", "each"), edge("each", "end")]
    return workflow(f"map-{count}", [source, each, node("end")], edges)


def slow_chain(count: int, ms: int) -> dict[str, Any]:
    """A chain of ``count`` nodes of ``ms`` milliseconds each (``bench.sleep``)."""
    ids = [f"n{i}" for i in range(count)]
    nodes = [
        {"id": i, "type": "function", "config": {"function_name": "bench.sleep", "ms": ms}}
        for i in ids
    ]
    return workflow(
        f"chain-{count}x{ms}ms", nodes, [edge(a, b) for a, b in itertools.pairwise(ids)]
    )
