"""The workflows the fault tests run: all nodes are handlers from tests/fault/handlers.py."""

from __future__ import annotations

import itertools
from typing import Any


def node(node_id: str, handler: str = "fault.work", **config: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "function",
        "config": {"function_name": handler, "node": node_id, **config},
    }


def edge(source: str, target: str, condition: str | None = None) -> dict[str, Any]:
    e = {"from": source, "to": target}
    if condition:
        e["condition"] = condition
    return e


def chaos_dag(name: str = "fault_chaos", ms: tuple[int, int] | None = None) -> dict[str, Any]:
    """20 nodes: a fan-out of 6 into a join, an exclusive branch (3 nodes or 2 nodes, on
    ``inputs.score``) into a second join, a fan-out of 3 into a third join, an end node.
    Each node sleeps 10-50 ms, or ``ms``."""
    fan = [f"p{i}" for i in range(1, 7)]
    quads = ["q1", "q2", "q3"]
    ids = ["start", *fan, "j1", "route", "hi1", "hi2", "hi3", "lo1", "lo2", "j2"]
    ids += [*quads, "j3", "end"]
    edges = [edge("start", p) for p in fan] + [edge(p, "j1") for p in fan]
    edges += [
        edge("j1", "route"),
        edge("route", "hi1", "inputs.score >= 50"),
        edge("route", "lo1", "inputs.score < 50"),
        edge("hi1", "hi2"),
        edge("hi2", "hi3"),
        edge("lo1", "lo2"),
        edge("hi3", "j2"),
        edge("lo2", "j2"),
    ]
    edges += [edge("j2", q) for q in quads] + [edge(q, "j3") for q in quads]
    edges.append(edge("j3", "end"))
    config = {"ms": list(ms)} if ms else {}
    return {"metadata": {"name": name}, "nodes": [node(i, **config) for i in ids], "edges": edges}


def diamond(name: str = "fault_diamond", ms: tuple[int, int] = (10, 50)) -> dict[str, Any]:
    """start -> a, b, c -> join -> end: a small fan-out and join."""
    branches = ["a", "b", "c"]
    nodes = [node(i, ms=list(ms)) for i in ["start", *branches, "join", "end"]]
    edges = [edge("start", b) for b in branches] + [edge(b, "join") for b in branches]
    edges.append(edge("join", "end"))
    return {"metadata": {"name": name}, "nodes": nodes, "edges": edges}


def chain(middle: dict[str, Any], name: str, after: dict[str, Any] | None = None) -> dict[str, Any]:
    """first -> middle -> last (``after`` replaces the plain last node)."""
    last = after or node("last")
    nodes = [node("first"), middle, last]
    edges = [edge("first", middle["id"]), edge(middle["id"], last["id"])]
    return {"metadata": {"name": name}, "nodes": nodes, "edges": edges}


def effect(node_id: str, **config: Any) -> dict[str, Any]:
    """A node whose handler makes a side effect keyed by its idempotency key."""
    return node(node_id, "fault.effect", **config)


def fleet_shapes(ms: tuple[int, int] = (30, 120)) -> dict[str, dict[str, Any]]:
    """The workflows of the fleet chaos test, every handler node a ``fault.effect``
    sleeping ``ms``: a chain, a fan-out into a join, an exclusive branch (on
    ``inputs.score``) into a join, a loop of three passes and a map node over the run's
    ``inputs.items``."""
    chain_ids = [f"c{i}" for i in range(1, 6)]
    fan = ["a", "b", "c", "d"]
    loop = {"id": "L", "type": "loop",
            "config": {"max_iterations": 5, "loop_back_to": "body", "condition": "iteration < 3",
                       "break_path": ["done"], "timeout_path": ["late"]}}  # fmt: skip
    mapper = effect("M", map_over="inputs.items", max_concurrency=3, ms=list(ms))
    shapes = {
        "chain": (chain_ids, list(itertools.pairwise(chain_ids))),
        "fanout": (
            ["start", *fan, "join", "end"],
            [("start", f) for f in fan] + [(f, "join") for f in fan] + [("join", "end")],
        ),
        "branch": (
            ["route", "hi1", "hi2", "lo", "join", "end"],
            [
                ("route", "hi1", "inputs.score >= 50"),
                ("route", "lo", "inputs.score < 50"),
                ("hi1", "hi2"),
                ("hi2", "join"),
                ("lo", "join"),
                ("join", "end"),
            ],
        ),
        "loop": (["first", "body", loop, "done", "late"], [("first", "body"), ("body", "L")]),
        "map": (["first", mapper, "last"], [("first", "M"), ("M", "last")]),
    }
    return {
        name: {
            "metadata": {"name": f"fleet_{name}"},
            "nodes": [effect(n, ms=list(ms)) if isinstance(n, str) else n for n in nodes],
            "edges": [edge(*e) for e in edges],
        }
        for name, (nodes, edges) in shapes.items()
    }
