"""Telling waiters that a run ended, over Redis pub/sub, instead of having them poll.

Whoever records a run's end in PostgreSQL announces it on the run's end channel
(:func:`wfrunner.engine.keys.ended_channel`) once the transaction has committed. A waiter
subscribes *before* it reads the run's status, so an end committed after that read is
always announced to it (no lost wake-up). A publish can still be lost (Redis restarts
between the commit and the PUBLISH, or the waiter's connection drops): the announcement
only wakes waiters early, PostgreSQL stays the truth, and waiters read it again at a slow
safety interval whatever they hear.

When a waiter listens, the announcement is the run's whole document, made by the worker
from what it has just committed (the same document ``get_run`` reads): the waiter returns
it without a read of its own. Otherwise, or when the document cannot be made there, it is
the run's status alone.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis

from wfrunner.engine import keys
from wfrunner.redisclient import UNAVAILABLE
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus

log = logging.getLogger(__name__)

#: Redis errors after which a waiter falls back to reading PostgreSQL at its interval
_REDIS_TROUBLE = UNAVAILABLE


def announcement(
    run_id: str, status: RunStatus, document: dict[str, Any] | None = None
) -> tuple[str, str]:
    """The channel and the message that announce the run's end (its document when given,
    else its status); a worker that finishes a run sends it with the run's last Redis
    writes (:meth:`wfrunner.engine.runstate.RunState.drop`)."""
    return keys.ended_channel(run_id), status.value if document is None else json.dumps(document)


def announce(
    rt: Runtime, run_id: str, status: RunStatus, document: dict[str, Any] | None = None
) -> None:
    """Wake the run's waiters, with its document when given; call only after the end is
    committed in PostgreSQL."""
    try:
        rt.redis.publish(*announcement(run_id, status, document))
    except _REDIS_TROUBLE as exc:  # the end is recorded; waiters find it at their interval
        log.warning("run %s ended %s; its waiters were not told (%s)", run_id, status, exc)


@dataclass(frozen=True)
class Announced:
    """What a run's end channel carried: its status, and its document when it was sent."""

    status: str
    document: dict[str, Any] | None = None

    @classmethod
    def parse(cls, data: bytes | str) -> Announced:
        text = data.decode() if isinstance(data, bytes) else str(data)
        if not text.startswith("{"):
            return cls(text)
        document = json.loads(text)
        return cls(str(document.get("status")), document)


class Watch:
    """A subscription to one run's end channel; :meth:`wait` sleeps until an announcement
    or the timeout. Enter it before reading the run's status, then read the status again
    after every :meth:`wait`."""

    def __init__(self, rt: Runtime, run_id: str) -> None:
        self._rt = rt
        self._channel = keys.ended_channel(run_id)
        self._pubsub: redis.client.PubSub | None = None

    def __enter__(self) -> Watch:
        self._subscribe()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _subscribe(self) -> None:
        """Subscribe and wait for Redis to confirm it: only then is no later PUBLISH missed."""
        pubsub = self._rt.redis.pubsub()
        try:
            pubsub.subscribe(self._channel)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                reply = pubsub.get_message(timeout=deadline - time.monotonic())
                if reply is not None and reply["type"] == "subscribe":
                    self._pubsub = pubsub
                    return
            log.warning("no subscription to %s confirmed: polling instead", self._channel)
        except _REDIS_TROUBLE as exc:
            log.warning("cannot subscribe to %s (%s): polling instead", self._channel, exc)
        pubsub.close()

    def _close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None

    def wait(self, seconds: float) -> Announced | None:
        """Sleep until the run's end is announced (what was announced) or ``seconds`` pass
        (None).

        Without a working subscription it sleeps the whole time and subscribes again, so a
        Redis restart costs at most one interval's delay.
        """
        deadline = time.monotonic() + max(seconds, 0.0)
        if self._pubsub is not None:
            try:
                while (left := deadline - time.monotonic()) > 0:
                    reply = self._pubsub.get_message(timeout=left)
                    if reply is not None and reply["type"] == "message":
                        return Announced.parse(reply["data"])
                return None
            except _REDIS_TROUBLE as exc:
                log.warning("lost the subscription to %s (%s)", self._channel, exc)
                self._close()
        time.sleep(max(deadline - time.monotonic(), 0.0))
        self._subscribe()
        return None
