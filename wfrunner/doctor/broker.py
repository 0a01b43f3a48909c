"""Which tokens have a message in the broker: what tells a token that waits in a queue
from one whose message was lost.

On a Redis broker (kombu's Redis transport) each queue is a list per priority step, and a
message a worker took and has not acknowledged (running, or held until its countdown)
sits in the ``unacked`` hash. Both are read (up to :data:`MAX_MESSAGES` each), never
changed; each ``wfrunner.execute_node`` message is decoded to the token it carries.

A RabbitMQ broker is not read: AMQP has no way to list a queue's messages without taking
them (and a taken message is redelivered, out of order, once given back), so the
diagnosis says it could not tell a queued token from a lost one (:data:`AMQP_UNREAD`).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from wfrunner.engine.tokens import Token
from wfrunner.metrics import queue_keys

if TYPE_CHECKING:
    from wfrunner.runtime import Runtime

log = logging.getLogger(__name__)

#: messages read per list (and from the unacked hash): a diagnosis is no queue dump
MAX_MESSAGES = 20_000
QUEUED, RESERVED = "queued", "reserved"
EXECUTE_NODE = "wfrunner.execute_node"
UNACKED_KEY = "unacked"


@dataclass(frozen=True)
class BrokerView:
    #: token key -> "queued" or "reserved"
    messages: dict[str, str]
    #: False when a list or the unacked hash held more than was read
    complete: bool


#: why a RabbitMQ broker's messages are not read (shown where a diagnosis would use them)
AMQP_UNREAD = (
    "the broker is RabbitMQ, whose queues cannot be listed without taking their messages: "
    "a queued message is not told from a lost one"
)


def read_broker(rt: Runtime) -> BrokerView | None:
    """The broker's view of wfrunner's queue, when the broker is a Redis; else None."""
    from wfrunner.tasks.app import app
    from wfrunner.tasks.broker import BrokerKind, broker_kind

    url = str(app.conf.broker_url)
    if broker_kind(url) is not BrokerKind.REDIS:
        return None
    if url == rt.redis_url:
        return read(rt.redis)
    client = redis.Redis.from_url(url)
    try:
        return read(client)
    finally:
        client.close()


def read(client: redis.Redis, queues: tuple[str, ...] = ("wfrunner.tasks",)) -> BrokerView:
    """The tokens of the execute_node messages waiting in ``queues`` or reserved."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    from wfrunner.tasks.app import app

    options = app.conf.broker_transport_options or {}
    steps = tuple(int(s) for s in options.get("priority_steps", PRIORITY_STEPS))
    sep = str(options.get("sep", Channel.sep))
    lists = [key for queue in queues for key in queue_keys(queue, steps, sep)]
    with client.pipeline(transaction=False) as pipe:
        for key in lists:
            pipe.lrange(key, 0, MAX_MESSAGES - 1)
            pipe.llen(key)
        pipe.hlen(UNACKED_KEY)
        replies = pipe.execute()
    messages: dict[str, str] = {}
    complete = True
    for i in range(len(lists)):
        items, length = replies[2 * i], replies[2 * i + 1]
        complete &= length <= len(items)
        for item in items:
            queued = token_key(item)
            if queued:
                messages.setdefault(queued, QUEUED)
    unacked = int(replies[-1])
    complete &= unacked <= MAX_MESSAGES
    for _, value in client.hscan_iter(UNACKED_KEY, count=500):
        try:
            envelope = json.loads(value)[0]
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        reserved = token_key(envelope)
        if reserved:
            messages[reserved] = RESERVED
    return BrokerView(messages, complete)


def token_key(item: Any) -> str | None:
    """The key of the token an execute_node message carries; None for any other message
    (or one that cannot be read: the poison screen deals with those)."""
    try:
        envelope = json.loads(item) if isinstance(item, (str, bytes)) else item
        if (envelope.get("headers") or {}).get("task") != EXECUTE_NODE:
            return None
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return Token.from_dict(args[2]).key
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
