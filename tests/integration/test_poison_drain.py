"""Parked poison messages reach PostgreSQL's dead letters, once each, and wait in Redis
while PostgreSQL is unreachable (real Redis and PostgreSQL)."""

from __future__ import annotations

import pytest

from wfrunner import poison, recovery
from wfrunner.errors import WfrunnerError
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings


def test_parked_poison_waits_for_postgres_then_moves_once(rt: Runtime, redis_url: str) -> None:
    broker = rt.broker_redis  # poison is parked where the messages are
    came_back = poison.Poison.of(b'{"body": 1}', "wfrunner.tasks", "bad body", key="tag-1")
    poison.park(broker, came_back)
    poison.park(broker, poison.Poison.of(b"\xff\x00zz", "wfrunner.tasks", "not JSON"))
    poison.park(broker, came_back)  # delivered again after a crash: parked twice
    broker.lpush(poison.POISON_KEY, "garbage, not a record")

    unreachable = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"
    down = Runtime(Settings(redis_url=redis_url, database_url=unreachable))
    with pytest.raises(WfrunnerError, match="WFRUNNER_DATABASE_URL"):
        poison.drain(down)
    down.close()
    assert broker.llen(poison.POISON_KEY) == 4  # nothing lost

    assert poison.drain(rt) == 4
    assert broker.llen(poison.POISON_KEY) == 0
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
