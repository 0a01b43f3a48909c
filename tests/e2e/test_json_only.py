"""JSON only, proven: a pickled task message on the real broker is refused, never executed.

The message is a well-formed Celery protocol-2 ``wfrunner.execute_node`` call whose body is
pickled (``application/x-python-serialize``); unpickling it would create a marker file.
It is published with kombu directly, bypassing the app's JSON-only publishing settings, as
an attacker with access to Redis would.
"""

from __future__ import annotations

import logging
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import bootsteps
from kombu.messaging import Producer

import wfrunner

MARKER_WAIT = 4.0
#: what Celery's consumer logs when it refuses the message
REFUSAL = "Refusing to deserialize untrusted content of type pickle"


class _Exploit:
    """Unpickling this opens (so creates) ``path``: the stand-in for arbitrary code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _publish_pickled(marker: Path) -> str:
    app = wfrunner.app
    queue = app.amqp.queues[app.conf.task_default_queue]
    task_id = str(uuid.uuid4())
    body: tuple[Any, ...] = (
        [_Exploit(marker), "no-such-workflow", {}],
        {},
        {"callbacks": None, "errbacks": None},
    )
    headers = {
        "lang": "py",
        "task": "wfrunner.execute_node",
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
        "argsrepr": "(...)",
        "kwargsrepr": "{}",
        "origin": "attacker",
    }
    with app.connection_for_write() as connection:
        Producer(connection).publish(  # type: ignore[no-untyped-call]
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            serializer="pickle",
            headers=headers,
            correlation_id=task_id,
            delivery_mode=2,
        )
    return task_id


def test_the_app_accepts_json_only(worker: Any) -> None:
    conf = wfrunner.app.conf
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert conf.result_accept_content in (None, ["json"])


def _refused(caplog: pytest.LogCaptureFixture) -> bool:
    return any(REFUSAL in record.getMessage() for record in caplog.records)


def _queued(task_id: str) -> bool:
    """Whether the message still waits in Redis (in the queue or delivered but unacked)."""
    client = redis.Redis.from_url(wfrunner.app.conf.broker_url)
    try:
        waiting = client.lrange(wfrunner.app.conf.task_default_queue, 0, -1)
        unacked = client.hvals("unacked")
        return any(task_id.encode() in raw for raw in [*waiting, *unacked])
    finally:
        client.close()


def test_a_pickled_message_is_never_executed(
    worker: Any, run_workflow: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the payload is live: unpickling it here creates the control marker
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Exploit(control)))
    assert control.exists()

    marker = tmp_path / "pwned"
    caplog.set_level(logging.ERROR, logger="celery.worker.consumer")
    task_id = _publish_pickled(marker)
    deadline = time.monotonic() + MARKER_WAIT
    while time.monotonic() < deadline:
        assert not marker.exists(), "the worker unpickled a message"
        time.sleep(0.1)
    assert not marker.exists(), "the worker unpickled a message"
    # refused by this worker, or (when another test session shares the Redis database)
    # taken off the queue by another wfrunner worker, which did not run it either
    assert _refused(caplog) or not _queued(task_id), "no worker received the message"

    assert worker.blueprint.state == bootsteps.RUN
    doc = run_workflow(
        {
            "nodes": [{"id": "A", "type": "function", "config": {"function_name": "t.increment"}}],
            "edges": [],
        },
        {"x": 1},
    )
    assert doc["status"] == "COMPLETED", doc
    assert doc["nodes"]["A"]["output"] == {"x": 2}
