"""Minimal reproductions of bugs the model-based test found (see test_stateful.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.harness import Harness
from wfrunner import recovery
from wfrunner.engine import keys
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings
from wfrunner.store import migrate


@pytest.fixture()
def rt(redis_client: redis.Redis, redis_url: str, database_url: str) -> Iterator[Runtime]:
    migrate.upgrade(database_url)
    runtime = Runtime(
        Settings(
            redis_url=redis_url,
            database_url=database_url,
            flush_interval=1,
            reconcile_interval=1,
        )
    )
    yield runtime
    runtime.close()


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
    h.deliver()  # B
    assert [(t.from_node, t.to_node) for t in h.queue] == [("A", "C"), ("B", "J")]
    h.deliver(lambda q: q.pop())  # B's token arrives at J: a live arrival, J not complete
    h.deliver()  # C: its dead arrival completes J, so C emits the token that fires J
    assert [(t.from_node, t.to_node) for t in h.queue] == [("C", "J")]
    recovery.flush(rt, h.run_id)
    rt.redis.delete(*keys.run_keys(h.run_id))  # Redis loses the run ...
    h.queue.clear()  # ... and the broker its messages
    h.reconcile()
    assert [(t.from_node, t.to_node) for t in h.queue] == [("C", "J")]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["status"] == "COMPLETED"
    assert doc["nodes"]["J"]["output"] == [1, 2]
    assert doc["nodes"]["E"]["output"] == [1, 2, 4]
