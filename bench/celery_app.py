"""Plain Celery, the baseline: ``celery -A bench.celery_app worker``.

Configured like wfrunner's app (``wfrunner/tasks/config.py`` plus the repository's
``celeryconfig.py``) so the comparison is of the engines, not of settings: JSON, late acks,
``task_reject_on_worker_lost``, prefetch 1, task events on (``task-sent`` too), the same
visibility timeout. The broker and result backend are ``BENCH_CELERY_REDIS_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench.handlers import OUTPUT

QUEUE = "bench.plain"

app = Celery("bench_plain")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/4"),
    result_backend=os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/4"),
    broker_transport_options={"visibility_timeout": 3600},
    result_backend_transport_options={"visibility_timeout": 3600},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    task_send_sent_event=True,
    result_expires=3600,
)


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """The no-op task of the raw throughput figure: no result is stored."""


@app.task(name="bench.step")
def step(value: Any = None) -> Any:
    """A chain or chord step: its result is stored (chains and chords need them)."""
    return OUTPUT
