"""Poison messages: what sits on the engine's queues and no task can be made of.

A worker that meets one (an envelope that is not JSON, a body that is not base64, an
unknown task, arguments that are not a token ...) logs it, *parks* it in the list
``wfr:poison`` of the state Redis (``WFRUNNER_REDIS_URL``, whatever the broker) and
acknowledges it, so it is neither lost nor delivered again and the worker goes on
consuming. Parking needs only Redis: the worker never waits for PostgreSQL while it holds
the queue. The parked records are moved into
PostgreSQL's dead letters (``kind`` "poison") by the reconciler (beat) and by every
``wfrunner dlq`` command; while PostgreSQL is unreachable they stay in Redis.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the worker's transport imports this module: keep it light
    import redis

    from wfrunner.runtime import Runtime

log = logging.getLogger(__name__)

#: the Redis list parked poison records wait in, newest on the left
POISON_KEY = "wfr:poison"
#: characters of a poison message kept; the rest is cut (a letter is for reading)
MAX_RAW_CHARS = 64 * 1024
#: records moved per batch
DRAIN_BATCH = 500


@dataclass(frozen=True)
class Poison:
    #: unique per message: its delivery tag when it has one (a message that comes back
    #: after a crash is parked twice but stored once), else a fresh id
    key: str
    queue: str
    reason: str
    raw: str

    @classmethod
    def of(cls, raw: bytes | str, queue: str, reason: str, key: str | None = None) -> Poison:
        return cls(key or f"poison-{uuid.uuid4().hex}", queue, reason, raw_text(raw))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Poison:
        """A parked record; anything else found in the list becomes a poison of its own."""
        try:
            data = json.loads(text)
            return cls(str(data["key"]), str(data["queue"]), str(data["reason"]), str(data["raw"]))
        except (ValueError, TypeError, KeyError):
            return cls.of(text, POISON_KEY, "unreadable record in the poison list")


def raw_text(raw: bytes | str) -> str:
    """Readable text of whatever arrived (undecodable bytes as escapes), cut when long."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    text = text.replace("\x00", "\\x00")  # PostgreSQL text cannot hold NUL
    if len(text) > MAX_RAW_CHARS:
        return text[:MAX_RAW_CHARS] + f"... ({len(text) - MAX_RAW_CHARS} more characters)"
    return text


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def park(client: redis.Redis, poison: Poison) -> None:
    """Keep ``poison`` in Redis until it is moved to PostgreSQL; logs what it parks."""
    log.error(
        "poison message on %s set aside as a dead letter: %s; raw: %.300s",
        poison.queue,
        poison.reason,
        poison.raw,
    )
    client.lpush(POISON_KEY, poison.to_json())


def park_in_state(poison: Poison) -> None:
    """:func:`park` in the state Redis, where :func:`drain` looks (with a broker apart,
    the Redis or RabbitMQ the message came from is not where the reconciler reads)."""
    from wfrunner.runtime import runtime

    park(runtime().redis, poison)


def drain(rt: Runtime) -> int:
    """Move parked poison records into PostgreSQL's dead letters; returns how many.

    Oldest first; a record leaves Redis only after its letter is committed, and storing is
    idempotent per key, so a crash between the two stores nothing twice.
    """
    from wfrunner.store import NewPoisonLetter

    moved = 0
    while True:
        items: list[Any] = rt.redis.lrange(POISON_KEY, -DRAIN_BATCH, -1)
        if not items:
            return moved
        parked = [Poison.from_json(i) for i in reversed(items)]  # oldest first
        rt.store.insert_poison_letters(
            [NewPoisonLetter(p.key, p.queue, p.reason, p.raw) for p in parked]
        )
        with rt.redis.pipeline(transaction=False) as pipe:
            for item in items:
                pipe.lrem(POISON_KEY, -1, item)
            pipe.execute()
        moved += len(items)
