"""Telling waiters that a run ended, over Redis pub/sub, instead of having them poll.

Whoever records a run's end in PostgreSQL announces it on the run's end channel
(:func:`wfrunner.engine.keys.ended_channel`) once the transaction has committed. A waiter
subscribes *before* it reads the run's status, so an end committed after that read is
always announced to it (no lost wake-up). A publish can still be lost (Redis restarts
between the commit and the PUBLISH, or the waiter's connection drops): the announcement
only wakes waiters early, PostgreSQL stays the truth, and waiters read it again at a slow
safety interval whatever they hear.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

import redis

from wfrunner.engine import keys
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus

log = logging.getLogger(__name__)

#: Redis errors after which a waiter falls back to reading PostgreSQL at its interval
_REDIS_TROUBLE = (redis.ConnectionError, redis.TimeoutError)


def announce(rt: Runtime, run_id: str, status: RunStatus) -> None:
    """Wake the run's waiters; call only after the end is committed in PostgreSQL."""
    try:
        rt.redis.publish(keys.ended_channel(run_id), status.value)
    except _REDIS_TROUBLE as exc:  # the end is recorded; waiters find it at their interval
        log.warning("run %s ended %s; its waiters were not told (%s)", run_id, status, exc)


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

    def wait(self, seconds: float) -> bool:
        """Sleep until the run's end is announced (True) or ``seconds`` pass (False).

        Without a working subscription it sleeps the whole time and subscribes again, so a
        Redis restart costs at most one interval's delay.
        """
        deadline = time.monotonic() + max(seconds, 0.0)
        if self._pubsub is not None:
            try:
                while (left := deadline - time.monotonic()) > 0:
                    reply = self._pubsub.get_message(timeout=left)
                    if reply is not None and reply["type"] == "message":
                        return True
                return False
            except _REDIS_TROUBLE as exc:
                log.warning("lost the subscription to %s (%s)", self._channel, exc)
                self._close()
        time.sleep(max(deadline - time.monotonic(), 0.0))
        self._subscribe()
        return False
