"""The workflows the fault tests run: all nodes are handlers from tests/fault/handlers.py."""

from __future__ import annotations

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
