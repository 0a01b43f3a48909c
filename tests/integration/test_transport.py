"""wfrunner's kombu transport on the real Redis: what a worker does with a message whose
channel lost its connection (a Redis restart while the task ran)."""

from __future__ import annotations

import logging

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from wfrunner.tasks.transport import TRANSPORT


def test_an_ack_on_a_channel_that_lost_its_connection_does_not_stop_the_worker(
    redis_url: str, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    conn = Connection(redis_url, transport=TRANSPORT)
    channel = conn.channel()
    queue = Queue("wfrunner.test-ack", Exchange("wfrunner.test-ack"), "wfrunner.test-ack")
    queue = queue(channel)
    queue.declare()
    try:
        Producer(channel).publish({"a": 1}, exchange=queue.exchange, routing_key=queue.name)
        message = queue.get(no_ack=False)
        assert message is not None
        conn.collect()  # what kombu does to the connection it replaces after an error
        channel._pool = None  # and the pool it had: the ack must build a client anew
        with caplog.at_level(logging.WARNING, logger="wfrunner.tasks.transport"):
            message.ack()  # kombu's own channel raises AttributeError here
        assert "not acknowledged: its channel lost its Redis connection" in caplog.text
    finally:
        redis_client.delete(*redis_client.keys("*wfrunner.test-ack*"))
