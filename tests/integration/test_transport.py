"""wfrunner's kombu transport on the real Redis: what a worker does with the messages of
a channel that lost its connection (a Redis restart while their tasks ran)."""

from __future__ import annotations

import logging

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from wfrunner.tasks.transport import TRANSPORT


def test_a_channel_that_lost_its_connection_does_not_stop_the_worker(
    redis_url: str, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """kombu's own channel raises AttributeError on both: the ack of a task that ran across
    the restart, and putting back the messages it still holds as the worker closes it."""
    conn = Connection(redis_url, transport=TRANSPORT)
    channel = conn.channel()
    queue = Queue("wfrunner.test-ack", Exchange("wfrunner.test-ack"), "wfrunner.test-ack")
    queue = queue(channel)
    queue.declare()
    try:
        for n in range(2):
            Producer(channel).publish({"n": n}, exchange=queue.exchange, routing_key=queue.name)
        done, held = queue.get(no_ack=False), queue.get(no_ack=False)
        assert done is not None and held is not None
        conn.collect()  # what kombu does to the connection it replaces after an error
        channel._pool = None  # and to its pool: acking must build a client anew
        with caplog.at_level(logging.WARNING, logger="wfrunner.tasks.transport"):
            done.ack()
            channel.qos.restore_unacked()  # what closing the channel does with ``held``
        assert "not acknowledged: its channel lost its Redis connection" in caplog.text
        assert "unacknowledged messages left to the visibility timeout" in caplog.text
    finally:
        redis_client.delete(*redis_client.keys("*wfrunner.test-ack*"))
