"""The Celery broker: which kind it is, and what wfrunner sets for each kind.

The broker (``WFRUNNER_BROKER_URL``) may be another server than the state Redis
(``WFRUNNER_REDIS_URL``, which keeps the token counter, outbox, leases and payloads); by
default it is that Redis. Two kinds are supported:

- **Redis** (``redis://``, ``rediss://``): kombu's Redis transport, with the poison screen
  of :mod:`wfrunner.tasks.transport` for ``redis://``; ``visibility_timeout`` applies.
- **RabbitMQ** (``amqp://``, ``amqps://``, ``pyamqp://``: kombu's py-amqp transport):
  wfrunner's queues are durable *quorum* queues on topic exchanges (replicated; a topic
  exchange is what Celery's native delayed delivery needs, so a countdown waits in
  RabbitMQ, not in a worker's memory holding an unacknowledged message); publishes wait
  for the broker's confirm (``confirm_publish``). Quorum queues of RabbitMQ 3.x have no
  message priorities: ``start_run``'s priority has no effect there.

The result backend keeps one value per run, ``start_run``'s run id
(``start_run.delay(...).get()``): ``WFRUNNER_RESULT_BACKEND`` when set, else the broker
when it is a Redis, else the state Redis when it is a plain ``redis://``/``rediss://``
URL, else ``rpc://`` (results travel back over the broker to the process that sent the
task, which is the one that can ``.get()`` them).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from wfrunner.errors import ConfigurationError
from wfrunner.redisclient import is_cluster_url
from wfrunner.servers import redact, redis_reachable
from wfrunner.settings import Settings


class BrokerKind(StrEnum):
    REDIS = "redis"
    AMQP = "amqp"


_SCHEMES = {
    "redis": BrokerKind.REDIS,
    "rediss": BrokerKind.REDIS,
    "amqp": BrokerKind.AMQP,
    "amqps": BrokerKind.AMQP,
    "pyamqp": BrokerKind.AMQP,
}

#: the queue argument that makes RabbitMQ declare a replicated quorum queue
QUORUM = {"x-queue-type": "quorum"}

#: the AMQP reply code of a passive declare of a queue that does not exist
NOT_FOUND = 404

#: seconds: the shortest delay RabbitMQ's native delayed delivery takes (it routes whole
#: seconds and refuses less than one)
AMQP_MIN_COUNTDOWN = 1.0


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def broker_kind(url: str) -> BrokerKind:
    """The kind of broker ``url`` names; a ConfigurationError for one wfrunner lacks."""
    if is_cluster_url(url):
        # kombu's transport and Celery's result backend need one server (a queue's list,
        # the unacked hash and its index are different keys): a cluster holds state only
        raise ConfigurationError(
            "a Redis Cluster holds wfrunner's state but cannot be Celery's broker: set "
            "WFRUNNER_BROKER_URL=redis://... or amqp://..."
        )
    kind = _SCHEMES.get(scheme(url))
    if kind is None:
        raise ConfigurationError(
            f"the Celery broker {redact(url)} is not supported: set WFRUNNER_BROKER_URL to "
            "a redis://, rediss:// or amqp:// (RabbitMQ) URL, or unset it to use the "
            "state Redis"
        )
    return kind


def broker_url(settings: Settings, state_url: str) -> str:
    """``WFRUNNER_BROKER_URL``, else the state Redis."""
    return settings.broker_url or state_url


def result_backend(settings: Settings, broker: str, state_url: str) -> str:
    """Where ``start_run``'s result goes (see the module docstring)."""
    if settings.result_backend:
        return settings.result_backend
    for url in (broker, state_url):
        if scheme(url) in ("redis", "rediss"):
            return url
    return "rpc://"


def amqp_queues(names: tuple[str, ...]) -> tuple[Any, ...]:
    """Durable quorum queues, each bound to a topic exchange of its own name."""
    from kombu.entity import Exchange, Queue

    return tuple(
        Queue(  # type: ignore[no-untyped-call]
            name,
            Exchange(name, type="topic", durable=True),  # type: ignore[no-untyped-call]
            routing_key=name,
            durable=True,
            queue_arguments=dict(QUORUM),
        )
        for name in names
    )


def countdown(conf: Mapping[str, Any], seconds: float) -> float:
    """The countdown to publish for a delay of ``seconds``: at least
    :data:`AMQP_MIN_COUNTDOWN` on RabbitMQ (a shorter one makes Celery's native delayed
    delivery raise), ``seconds`` elsewhere."""
    url = str(conf.get("broker_url") or "")
    if seconds > 0 and _SCHEMES.get(scheme(url)) is BrokerKind.AMQP:
        return max(seconds, AMQP_MIN_COUNTDOWN)
    return seconds


def amqp_depths(url: str, queues: tuple[str, ...], timeout: float = 5.0) -> dict[str, int]:
    """The ready messages of each queue on the RabbitMQ at ``url`` (passive declares, on
    a connection of their own); 0 for a queue not declared yet."""
    from kombu.connection import Connection

    sizes: dict[str, int] = {}
    with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        for queue in queues:
            channel = connection.channel()  # a 404 closes its channel: one each
            try:
                sizes[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except connection.channel_errors as exc:
                if getattr(exc, "code", None) != NOT_FOUND:
                    raise
                sizes[queue] = 0
            finally:
                channel.close()
    return sizes


def broker_answers(url: str, timeout: float = 5.0) -> bool:
    """Whether the broker at ``url`` accepts a connection (a Redis answers PING)."""
    if broker_kind(url) is BrokerKind.REDIS:
        return redis_reachable(url, timeout)
    from kombu.connection import Connection

    try:
        with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
            connection.connect()
    except Exception:  # refused, unknown host, bad credentials, TLS ...: it does not answer
        return False
    return True
