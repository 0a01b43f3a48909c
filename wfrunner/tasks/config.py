"""Celery settings wfrunner relies on, built from :class:`Settings`.

The safety settings are not tuning: JSON-only messages keep serialized Python objects from ever
being executed, and late acks with ``task_reject_on_worker_lost`` give at-least-once
delivery, which the idempotent token counter turns into exactly-once effect.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wfrunner.errors import ConfigurationError
from wfrunner.servers import redact
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
            "wfrunner-fire-schedules": {
                "task": "wfrunner.fire_schedules",
                "schedule": float(settings.schedule_interval),
                "options": {
                    "queue": COMPLETION_QUEUE,
                    "expires": float(settings.schedule_interval),
                },
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


#: settings that choose the broker: they may only name wfrunner's own Redis
BROKER_SETTINGS = ("broker_url", "broker_read_url", "broker_write_url")


def user_overrides(module_name: str = "celeryconfig") -> dict[str, Any]:
    """Lower-case names of a ``celeryconfig`` module, minus unsafe ones.

    It is looked for in the current folder first, as ``app.config_from_object(name,
    silent=True)`` does for a Celery user (``celery -A wfrunner worker`` run from the
    folder of their handlers), then on ``sys.path``; it is read here rather than by
    ``config_from_object`` because its values must go over wfrunner's and be checked first.
    """
    from celery.utils.imports import cwd_in_path

    try:
        with cwd_in_path():
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


def _redis_identity(url: str) -> tuple[str, ...]:
    """What names one Redis database, whatever the spelling (localhost, default port/db)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        db = parts.path.strip("/") if scheme in ("redis", "rediss") else parts.path
        db = db or parse_qs(parts.query).get("db", ["0"])[0]
        host = (parts.hostname or "localhost").lower()
        port = str(parts.port or 6379)
    except ValueError:
        return (url,)
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    return (scheme, host, port, db)


def check_broker(overrides: Mapping[str, Any], redis_url: str, env: Mapping[str, str]) -> None:
    """Refuse a broker other than the Redis that holds wfrunner's run state.

    Tokens are published where their run's state is; a worker consuming from another
    Redis would never see them (nodes wait forever), and the reconciler would publish to
    a queue nobody reads. Celery takes ``CELERY_BROKER_URL`` (``celery -b``) over the
    settings, so it is checked too.
    """
    sources = {
        f"celeryconfig.{key}": overrides[key] for key in BROKER_SETTINGS if overrides.get(key)
    }
    if env.get("CELERY_BROKER_URL"):
        sources["CELERY_BROKER_URL (celery -b)"] = env["CELERY_BROKER_URL"]
    state = (
        f"WFRUNNER_REDIS_URL={redact(redis_url)}"
        if env.get("WFRUNNER_REDIS_URL")
        else f"the embedded Redis {redact(redis_url)} (WFRUNNER_REDIS_URL is unset)"
    )
    for source, url in sources.items():
        if _redis_identity(str(url)) != _redis_identity(redis_url):
            raise ConfigurationError(
                f"{source}={redact(str(url))} is not the Redis that holds wfrunner's run "
                f"state, {state}: the broker must be that Redis; remove {source} or set "
                "WFRUNNER_REDIS_URL to the same URL"
            )
