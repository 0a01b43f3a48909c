"""Minimal reproductions of bugs the model-based test found (see test_stateful.py)."""

from __future__ import annotations

from typing import Any

from tests.harness import Harness, redis_seen_as
from wfrunner import recovery
from wfrunner.engine import keys
from wfrunner.runtime import Runtime


def join_finished_by_a_dead_arrival() -> dict[str, Any]:
    """A -> B -> J and A -> C -> J, the edge C -> J never taken: when B arrives first,
    C's dead arrival completes J and C sends the token that fires it."""
    return {
        "nodes": [
            {"id": "A", "type": "transform", "config": {"expression": "[1]"}},
            {"id": "B", "type": "transform", "config": {"expression": "input + [2]"}},
            {"id": "C", "type": "transform", "config": {"expression": "input + [3]"}},
            {"id": "J", "type": "aggregate", "config": {"strategy": "concat"}},
            {"id": "E", "type": "transform", "config": {"expression": "input + [4]"}},
        ],
        "edges": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "C"},
            {"from": "B", "to": "J"},
            {"from": "C", "to": "J", "condition": "false"},
            {"from": "J", "to": "E"},
        ],
    }


def test_join_fired_by_a_dead_arrival_survives_a_redis_rebuild(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(join_finished_by_a_dead_arrival(), {})
    h.deliver()  # A
    assert [t.to_node for t in h.queue] == ["B", "C"]
    h.deliver()  # B: its commit records its live arrival at J, J not complete
    assert [(t.from_node, t.to_node) for t in h.queue] == [("A", "C")]
    h.deliver()  # C: its dead arrival completes J, so C emits the token that fires J
    assert [(t.from_node, t.to_node) for t in h.queue] == [("C", "J")]
    recovery.flush(rt, h.run_id)
    rt.redis.delete(*keys.run_keys(h.run_id))  # Redis loses the run ...
    redis_seen_as(rt, None)
    h.queue.clear()  # ... and the broker its messages
    h.reconcile()
    assert [(t.from_node, t.to_node) for t in h.queue] == [("C", "J")]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["status"] == "COMPLETED"
    assert doc["nodes"]["J"]["output"] == [1, 2]
    assert doc["nodes"]["E"]["output"] == [1, 2, 4]


def join_finished_by_one_of_two_dead_arrivals() -> dict[str, Any]:
    """A -> B -> J live; A -> S1 -> J and A -> S2 -> J never taken."""
    node = {"type": "transform", "config": {"expression": "input + [1]"}}
    return {
        "nodes": [
            {"id": "A", "type": "transform", "config": {"expression": "[0]"}},
            {"id": "B", **node},
            {"id": "S1", **node},
            {"id": "S2", **node},
            {"id": "J", "type": "aggregate", "config": {"strategy": "concat"}},
        ],
        "edges": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "S1"},
            {"from": "A", "to": "S2"},
            {"from": "B", "to": "J"},
            {"from": "S1", "to": "J", "condition": "false"},
            {"from": "S2", "to": "J", "condition": "false"},
        ],
    }


def test_join_finisher_survives_a_rebuild_when_dead_arrivals_commit_out_of_order(
    rt: Runtime,
) -> None:
    """Two workers race: S1 decides on its dead arrival at J first (J not complete), then
    S2 runs to the end and commits before S1. A dead arrival is recorded by its node's
    commit, and only while the join holds the arrivals it was decided on: S1's commit is
    refused (J moved on), S1 decides again, its arrival completes J and it sends the fire
    token. The events list the arrivals in the order they were recorded, so a rebuild
    names the same finisher (once, with the arrivals recorded before their commits, the
    events listed S2's first and a rebuild named S1 while S2 had sent the fire token)."""
    h = Harness(rt)
    h.start(join_finished_by_one_of_two_dead_arrivals(), {})
    h.deliver()  # A
    h.deliver()  # B: its commit records its live arrival at J, J not complete
    assert [t.to_node for t in h.queue] == ["S1", "S2"]
    s1, s2 = h.queue.popleft(), h.queue.popleft()

    commit = rt.state.commit
    raced: list[bool] = []
    replies: list[tuple[str, str]] = []

    def s1_commits_last(token: Any, *args: Any, **kwargs: Any) -> Any:
        if token.to_node == "S1" and not raced:
            raced.append(True)  # S1 has decided on its dead arrival; S2 runs to the end now
            h.act(s2, h.process(s2))
        reply = commit(token, *args, **kwargs)
        replies.append((token.to_node, reply.state))
        return reply

    rt.state.commit = s1_commits_last  # type: ignore[method-assign]
    try:
        h.act(s1, h.process(s1))
    finally:
        rt.state.commit = commit  # type: ignore[method-assign]
    assert replies == [("S2", "running"), ("S1", "conflict"), ("S1", "running")]
    assert [(t.from_node, t.to_node) for t in h.queue] == [("S1", "J")]  # S1 finished J
    h.lose_hot_state()
    assert [(t.from_node, t.to_node) for t in h.queue] == [("S1", "J")]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["status"] == "COMPLETED"
    assert doc["nodes"]["J"]["output"] == [0, 1]
