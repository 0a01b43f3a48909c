"""Run ends recorded by a thread of the worker process, while its task goes on.

Recording a run's end takes a Redis transaction, a PostgreSQL statement with its commit
and a Lua call: most of a millisecond spent waiting on the servers. The task that brought
the counter to 0 hands that work to this process's finisher thread and returns, so its
pool process takes its next message meanwhile. At most one end waits per process: the
next hand-over first waits for the one before, so a slow PostgreSQL slows the tasks
instead of piling ends up in memory.

Nothing is lost when the process dies with an end in hand: the run's counter is 0 (or
its end is recorded in Redis, not in PostgreSQL), which the reconciler finishes. An end
that fails here (PostgreSQL or Redis away) sends the completion check to the
``wfrunner.completion`` queue, as the task would have.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from celery.signals import worker_process_shutdown


class Finisher:
    """One thread per process, one end in hand at a time (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` in the thread once the end handed over before it is done."""
        with self._lock:
            if self._pid != os.getpid():  # a forked pool process: the parent's thread is not here
                self._pid, self._pool, self._pending = os.getpid(), None, None
            self._wait()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="wfrunner-finisher")
            self._pending = self._pool.submit(work)

    def drain(self) -> None:
        """Wait for the end in hand, if any (the process is about to exit)."""
        with self._lock:
            if self._pid == os.getpid():
                self._wait()

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # ``work`` logs and handles its own errors


FINISHER = Finisher()
atexit.register(FINISHER.drain)


@worker_process_shutdown.connect
def _drain(**_: object) -> None:
    FINISHER.drain()
