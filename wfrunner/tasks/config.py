"""Celery settings wfrunner relies on, built from :class:`Settings`.

The safety settings are not tuning: JSON-only messages keep serialized Python objects from ever
being executed, and late acks with ``task_reject_on_worker_lost`` give at-least-once
delivery, which the idempotent token counter turns into exactly-once effect.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from wfrunner.settings import Settings

log = logging.getLogger(__name__)

TASK_QUEUE = "wfrunner.tasks"
COMPLETION_QUEUE = "wfrunner.completion"

#: start_run's message priority on Redis (kombu's priority steps 0, 3, 6, 9; 0 is taken
#: first, and every other task has 0): a worker takes node work before it starts another
#: run, so a backlog of starts runs its runs a few at a time to their end instead of
#: making every run live (and due to be flushed) before any of them progresses
START_PRIORITY = 9

#: messages each worker process reserves ahead (celeryconfig.py may change it)
PREFETCH_MULTIPLIER = 1

#: the worker's consumer: checks every message before Celery makes a request of it
CONSUMER = "wfrunner.tasks.consumer:Consumer"

#: settings a ``celeryconfig`` module may not weaken
PROTECTED = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_consumer": CONSUMER,  # sets poison messages aside (no message stops a worker)
}


def broker_transport(redis_url: str) -> str | None:
    """kombu's Redis transport with the poison screen, for plain ``redis://`` brokers."""
    from wfrunner.tasks.transport import TRANSPORT

    return TRANSPORT if redis_url.split(":", 1)[0].lower() == "redis" else None


def celery_settings(settings: Settings, redis_url: str) -> dict[str, Any]:
    transport = {"visibility_timeout": settings.visibility_timeout}
    return {
        "broker_url": redis_url,
        "broker_transport": broker_transport(redis_url),
        "result_backend": redis_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": TASK_QUEUE,
        "task_routes": {
            "wfrunner.check_completion": {"queue": COMPLETION_QUEUE},
            "wfrunner.start_run": {"queue": TASK_QUEUE, "priority": START_PRIORITY},
            "wfrunner.*": {"queue": TASK_QUEUE},
        },
        # 1: a busy worker holds no message an idle one could run. 4 and 8 were measured
        # (issue 9) and gave no clear gain on a loaded machine, while with 4 the workers
        # of the Redis-restart fault test died twice in seven runs acknowledging, after
        # the restart, messages reserved before it; a reserved message holds no lease, so
        # the reconciler treats it as a queued token whatever the multiplier.
        "worker_prefetch_multiplier": PREFETCH_MULTIPLIER,
        "result_expires": 24 * 3600,
        "beat_schedule": {
            "wfrunner-detect-timeouts": {
                "task": "wfrunner.detect_timeouts",
                "schedule": float(settings.timeout_check_interval),
            },
            "wfrunner-reconcile": {
                "task": "wfrunner.reconcile",
                "schedule": float(settings.reconcile_interval),
                "options": {"queue": COMPLETION_QUEUE},
            },
        },
        # task events cost every task two extra publishes (and task-sent one per
        # apply_async); Flower's enable_events control command turns the worker's on when
        # it connects, so they are off unless WFRUNNER_TASK_EVENTS=1
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        **PROTECTED,
    }


def user_overrides(module_name: str = "celeryconfig") -> dict[str, Any]:
    """Lower-case names of an importable ``celeryconfig`` module, minus unsafe ones."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return {}
    overrides = {k: v for k, v in vars(module).items() if k.islower() and not k.startswith("_")}
    for key, safe in PROTECTED.items():
        if key in overrides and overrides[key] != safe:
            log.warning(
                "%s.%s=%r ignored: wfrunner requires %r", module_name, key, overrides[key], safe
            )
            overrides[key] = safe
    return overrides
