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
from urllib.parse import parse_qs, unquote, urlsplit

from wfrunner.errors import ConfigurationError
from wfrunner.servers import redact
from wfrunner.settings import Settings
from wfrunner.tasks.broker import (
    BrokerKind,
    amqp_queues,
    broker_kind,
    broker_url,
    result_backend,
    scheme,
)

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


def broker_transport(url: str) -> str | None:
    """kombu's Redis transport with the poison screen, for plain ``redis://`` brokers."""
    from wfrunner.tasks.transport import TRANSPORT

    return TRANSPORT if scheme(url) == "redis" else None


def broker_settings(settings: Settings, url: str) -> dict[str, Any]:
    """The settings that depend on the broker's kind (see :mod:`wfrunner.tasks.broker`)."""
    if broker_kind(url) is BrokerKind.AMQP:
        return {
            "broker_transport": None,
            "broker_transport_options": {"confirm_publish": True},
            "task_queues": amqp_queues((TASK_QUEUE, COMPLETION_QUEUE)),
        }
    return {
        "broker_transport": broker_transport(url),
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "task_queues": None,
    }


def celery_settings(settings: Settings, redis_url: str) -> dict[str, Any]:
    """wfrunner's Celery settings; ``redis_url`` is the (resolved) state Redis."""
    broker = broker_url(settings, redis_url)
    backend = result_backend(settings, broker, redis_url)
    on_redis = scheme(backend) in ("redis", "rediss")
    backend_options = {"visibility_timeout": settings.visibility_timeout} if on_redis else {}
    return {
        "broker_url": broker,
        "result_backend": backend,
        **broker_settings(settings, broker),
        "result_backend_transport_options": backend_options,
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


#: settings that choose the broker: they may only name wfrunner's own broker
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


_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}


def _broker_identity(url: str) -> tuple[str, ...]:
    """What names one broker (a Redis database, a RabbitMQ virtual host), whatever the
    spelling (localhost, default port, database or vhost, pyamqp:// for amqp://)."""
    try:
        parts = urlsplit(url)
        kind = {"pyamqp": "amqp"}.get(parts.scheme.lower(), parts.scheme.lower())
        if kind in ("redis", "rediss"):
            where = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
        else:
            where = unquote(parts.path[1:]) or "/"  # the vhost; amqp://host/ is "/"
        host = (parts.hostname or "localhost").lower()
        port = str(parts.port or _DEFAULT_PORTS.get(kind) or "")
    except ValueError:
        return (url,)
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    return (kind, host, port, where)


def check_broker(overrides: Mapping[str, Any], redis_url: str, env: Mapping[str, str]) -> None:
    """Refuse an unsupported broker, and a broker other than the one wfrunner is configured
    with (``WFRUNNER_BROKER_URL``, else the Redis that holds the run state).

    Every wfrunner process publishes there: the CLI and the REST API, which read no
    ``celeryconfig``, and the reconciler, which publishes again the tokens it finds lost;
    a worker consuming from another broker would never see them (nodes wait forever).
    Celery takes ``CELERY_BROKER_URL`` (``celery -b``) over the settings, so it is checked
    too.
    """
    broker = env.get("WFRUNNER_BROKER_URL") or redis_url
    broker_kind(broker)
    sources = {
        f"celeryconfig.{key}": overrides[key] for key in BROKER_SETTINGS if overrides.get(key)
    }
    if env.get("CELERY_BROKER_URL"):
        sources["CELERY_BROKER_URL (celery -b)"] = env["CELERY_BROKER_URL"]
    for source, url in sources.items():
        if _broker_identity(str(url)) != _broker_identity(broker):
            raise ConfigurationError(_elsewhere(source, str(url), redis_url, env))


def _elsewhere(source: str, url: str, redis_url: str, env: Mapping[str, str]) -> str:
    if env.get("WFRUNNER_BROKER_URL"):
        return (
            f"{source}={redact(url)} is not wfrunner's broker, "
            f"WFRUNNER_BROKER_URL={redact(env['WFRUNNER_BROKER_URL'])}: every wfrunner "
            f"process publishes there; remove {source} or set WFRUNNER_BROKER_URL to it"
        )
    state = (
        f"WFRUNNER_REDIS_URL={redact(redis_url)}"
        if env.get("WFRUNNER_REDIS_URL")
        else f"the embedded Redis {redact(redis_url)} (WFRUNNER_REDIS_URL is unset)"
    )
    return (
        f"{source}={redact(url)} is not the Redis that holds wfrunner's run state, {state}, "
        f"which is the broker unless WFRUNNER_BROKER_URL names another: remove {source} "
        "and set WFRUNNER_BROKER_URL to it (every wfrunner process must publish there)"
    )
