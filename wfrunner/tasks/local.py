"""A worker inside the current process, for ``wfrunner run --wait`` with no worker running
and for the engine tests: the same Celery worker code, on a thread pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.contrib.testing.worker import start_worker

from wfrunner.tasks.config import COMPLETION_QUEUE, TASK_QUEUE


@contextmanager
def local_worker(app: Celery, concurrency: int = 4, loglevel: str = "WARNING") -> Iterator[Any]:
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        queues=[TASK_QUEUE, COMPLETION_QUEUE],
        loglevel=loglevel,
        shutdown_timeout=30,
    ) as worker:
        yield worker
