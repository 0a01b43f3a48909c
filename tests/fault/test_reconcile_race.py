"""A race the chaos test once hit, pinned deterministically.

``recovery.reconcile`` lists the active runs from PostgreSQL, then reads each run's meta
from Redis. A run that completes in between (``lifecycle.finish``: status COMPLETED in
PostgreSQL, then its keys deleted) looks "lost by Redis"; ``rebuild`` must see that
PostgreSQL records it as ended and leave it alone, or its keys would stay in Redis for
ever (and its pending tokens could run again).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault.procs import RedisServer
from tests.fault.workflows import diamond
from tests.harness import Harness
from wfrunner import recovery
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings


@pytest.fixture()
def rt(fault_redis: RedisServer, fault_db: str) -> Iterator[Runtime]:
    if fault_redis.proc is None:
        fault_redis.start()
    runtime = Runtime(
        Settings(
            redis_url=fault_redis.url,
            database_url=fault_db,
            handler_modules=("tests.fault.handlers",),
        )
    )
    runtime.redis.flushall()
    yield runtime
    runtime.close()


def test_reconcile_does_not_resurrect_a_run_that_just_completed(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(rt)
    run_id = h.start(diamond(), {"tag": "race"})
    listed = rt.store.active_generations()  # the reconciler's round, taken while it runs
    assert list(listed) == [run_id]
    assert h.drain()["status"] == "COMPLETED"  # finish() deletes the hot keys
    monkeypatch.setattr(rt.store, "active_generations", lambda: listed)
    recovery.reconcile(rt)
    assert rt.redis.keys(f"wfr:{{{run_id}}}:*") == []
