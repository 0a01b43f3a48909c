"""How the engine uses Celery: a delivery's publishes reach Redis in one batch, and
wait_for_run wakes on the run's end (Flower's enable_events: tests/e2e/test_cli_worker.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import wfrunner
from tests.e2e.handlers import gates
from wfrunner import client, runtime
from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.tasks import execution

#: a queue no worker of the test session consumes
QUEUE = "wfrunner.test-publishing"


@pytest.fixture()
def queue(engine_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    monkeypatch.setattr(execution, "TASK_QUEUE", QUEUE)
    r = redis.Redis.from_url(engine_env["WFRUNNER_REDIS_URL"])
    r.delete(QUEUE)
    yield r
    r.delete(QUEUE)
    r.close()


def test_a_deliverys_publishes_reach_redis_in_one_batch(queue: redis.Redis) -> None:
    tokens = [Token.entry("r-batch", f"n{i}") for i in range(50)]
    with execution.publishing() as producer:
        execution.dispatch(tokens, "wf-batch", producer=producer)
        assert queue.llen(QUEUE) == 0, "messages were sent one by one"
    assert queue.llen(QUEUE) == 50


def test_an_error_inside_the_batch_sends_nothing(queue: redis.Redis) -> None:
    """The tokens stay in the run's outbox (the reconciler or a retry sends them)."""
    tokens = [Token.entry("r-batch", f"n{i}") for i in range(5)]
    with pytest.raises(RuntimeError), execution.publishing() as producer:
        execution.dispatch(tokens, "wf-batch", producer=producer)
        raise RuntimeError("the delivery fails before it is done")
    assert queue.llen(QUEUE) == 0


def test_wait_for_run_wakes_on_the_end_not_on_its_interval(worker: Any) -> None:
    wf = {
        "nodes": [
            {"id": "a", "type": "function", "config": {"function_name": "t.wait", "gate": "wake"}},
            {"id": "b", "type": "function", "config": {"function_name": "t.echo"}},
        ],
        "edges": [{"from": "a", "to": "b"}],
    }
    run_id = wfrunner.start_run.delay(client.register_workflow(wf), {"v": 1}).get(timeout=30)
    done: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: done.update(doc=client.wait_for_run(run_id, timeout=60, interval=3600)),
        daemon=True,
    )
    waiter.start()
    channel = keys.ended_channel(run_id)
    r = runtime.runtime().redis
    for _ in range(500):
        if dict(r.pubsub_numsub(channel)).get(channel):
            break
        time.sleep(0.01)
    gates.setdefault("wake", threading.Event()).set()
    waiter.join(30)
    assert not waiter.is_alive(), "wait_for_run did not wake on the run's end"
    assert done["doc"]["status"] == "COMPLETED"
