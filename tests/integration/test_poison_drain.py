"""Parked poison messages reach PostgreSQL's dead letters, once each, and wait in Redis
while PostgreSQL is unreachable (real Redis and PostgreSQL)."""

from __future__ import annotations

import pytest
import redis

from wfrunner import poison, recovery
from wfrunner.errors import WfrunnerError
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings


def test_parked_poison_waits_for_postgres_then_moves_once(
    rt: Runtime, redis_client: redis.Redis, redis_url: str, state_url: str
) -> None:
    came_back = poison.Poison.of(b'{"body": 1}', "wfrunner.tasks", "bad body", key="tag-1")
    poison.park(redis_client, came_back)
    poison.park(redis_client, poison.Poison.of(b"\xff\x00zz", "wfrunner.tasks", "not JSON"))
    poison.park(redis_client, came_back)  # delivered again after a crash: parked twice
    redis_client.lpush(poison.POISON_KEY, "garbage, not a record")

    unreachable = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"
    down = Runtime(Settings(redis_url=state_url, broker_url=redis_url, database_url=unreachable))
    with pytest.raises(WfrunnerError, match="WFRUNNER_DATABASE_URL"):
        poison.drain(down)
    down.close()
    assert redis_client.llen(poison.POISON_KEY) == 4  # nothing lost

    assert poison.drain(rt) == 4
    assert redis_client.llen(poison.POISON_KEY) == 0
    letters = rt.store.list_dead_letters()
    assert [(d.kind, d.error) for d in letters] == [
        ("poison", "bad body"),
        ("poison", "not JSON"),
        ("poison", "unreadable record in the poison list"),
    ]
    assert letters[1].raw == "\\xff\\x00zz"
    assert letters[0].run_id is None and letters[0].queue == "wfrunner.tasks"
    with pytest.raises(WfrunnerError, match="poison message"):
        recovery.retry_dead_letter(rt, letters[0].id)
