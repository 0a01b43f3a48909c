"""Prometheus metrics (docs/observability.md): what runs and nodes did, read at scrape time.

Recording costs a counter increment in the process that did the work: no Redis or
PostgreSQL round trip is added to a node. Labels stay few: ``workflow`` is the name a
workflow was registered under (not its id, which changes with every edit), ``node`` the
node id.

Celery's prefork pool runs tasks in child processes, each with its own counters, so a
worker exports them in prometheus_client's multiprocess mode: ``worker_init``
(:mod:`wfrunner.tasks.exporter`) points ``PROMETHEUS_MULTIPROC_DIR`` at a folder of its
own before the pool forks, every process writes its samples there, and the worker's main
process serves their sum over HTTP on ``WFRUNNER_METRICS_PORT``. :func:`render` is what
the REST API's ``/metrics`` returns; both add the queue depths, read from the broker
(Redis or RabbitMQ) when scraped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

WORKFLOW = "workflow"
NODE = "node"

RUNS_STARTED = Counter(
    "wfrunner_runs_started", "Runs made RUNNING (their entry tokens emitted).", [WORKFLOW]
)
RUNS_ENDED = Counter(
    "wfrunner_runs_ended",
    "Runs whose end was recorded in PostgreSQL, by status (completed, failed, cancelled).",
    [WORKFLOW, "status"],
)
NODE_SECONDS = Histogram(
    "wfrunner_node_duration_seconds",
    "Seconds one delivery of a node took in its task (begin, handler, commit), by outcome "
    "completed, failed or retried.",
    [WORKFLOW, NODE],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
NODE_EXECUTIONS = Counter(
    "wfrunner_node_executions",
    "Node deliveries that ran, by outcome: completed, failed (the run failed), retried "
    "(the handler raised and its retry policy sent it again).",
    [WORKFLOW, NODE, "outcome"],
)
REDELIVERIES = Counter(
    "wfrunner_redeliveries",
    "Tokens begun again (attempt 2 and later): retries, and deliveries after a worker died "
    "or a message came back.",
    [WORKFLOW, NODE],
)
RECONCILER_REPAIRS = Counter(
    "wfrunner_reconciler_repairs",
    "What reconciler passes repaired, by kind: rebuilt, republished, finished, "
    "completion_checked, started, dropped, slots_freed; and wfrunner doctor's repairs: "
    "doctor_requeue, doctor_rebuild, doctor_fail, doctor_cancel.",
    ["kind"],
)
DEAD_LETTERS = Counter(
    "wfrunner_dead_letters",
    "Dead letters recorded: node (a token whose attempts ran out) or poison (a message no "
    "worker could read).",
    ["kind"],
)

#: the queues whose depth is exported (wfrunner.tasks.config's TASK_QUEUE, COMPLETION_QUEUE)
QUEUES = ("wfrunner.tasks", "wfrunner.completion")


def queue_keys(queue: str, steps: tuple[int, ...], sep: str) -> list[str]:
    """The Redis lists kombu's Redis transport keeps for ``queue``: one per priority step,
    the queue's own name for step 0 and ``<queue><sep><step>`` for the others."""
    return [queue if step == 0 else f"{queue}{sep}{step}" for step in steps]


class QueueDepth(Collector):
    """``wfrunner_queue_depth{queue}``: messages waiting in each queue, read when scraped
    (a broker round trip per scrape, none per task). Reserved messages (taken by a
    worker, not acked) are not counted.

    On a Redis broker: one LLEN per priority list. A worker's collector has a Redis client
    of its own, made before the pool forks: a scrape in the main process must not hold a
    lock of the runtime (``cached_property`` locks are shared by all instances) while a
    child is forked, or that child would wait on it forever. Without ``client`` the
    process's runtime is used (the REST API) when the broker is the state Redis.

    On RabbitMQ: a passive declare of each queue (its ready messages), on a connection
    opened for the scrape; a queue not declared yet (no worker started) counts 0."""

    def __init__(self, queues: tuple[str, ...] = QUEUES, client: redis.Redis | None = None) -> None:
        from kombu.transport.redis import PRIORITY_STEPS, Channel

        from wfrunner.tasks.app import app

        options = app.conf.broker_transport_options or {}
        self.queues = queues
        self.client = client
        self.url = str(app.conf.broker_url)
        self.steps = tuple(int(s) for s in options.get("priority_steps", PRIORITY_STEPS))
        self.sep = str(options.get("sep", Channel.sep))

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "wfrunner_queue_depth",
            "Messages waiting in a queue (all priorities).",
            labels=["queue"],
        )
        try:
            sizes = self.sizes()
        except Exception as exc:  # a scrape reports what it has; the broker away is logged
            log.warning("queue depth not read: %s", exc)
            return
        for queue in self.queues:
            family.add_metric([queue], sizes[queue])
        yield family

    def sizes(self) -> dict[str, int]:
        from wfrunner.tasks.broker import BrokerKind, amqp_depths, broker_kind

        if broker_kind(self.url) is BrokerKind.AMQP:
            return amqp_depths(self.url, self.queues)
        client = self.client if self.client is not None else _broker_redis(self.url)
        with client.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                for key in queue_keys(queue, self.steps, self.sep):
                    pipe.llen(key)
            lengths = pipe.execute()
        per_queue = len(self.steps)
        return {
            queue: sum(lengths[number * per_queue : (number + 1) * per_queue])
            for number, queue in enumerate(self.queues)
        }


#: broker URL -> the Redis client scrapes of a broker apart from the state Redis use
_BROKER_CLIENTS: dict[str, redis.Redis] = {}


def _broker_redis(url: str) -> redis.Redis:
    from wfrunner.runtime import runtime

    rt = runtime()
    if url == rt.redis_url:
        return rt.redis
    if url not in _BROKER_CLIENTS:
        _BROKER_CLIENTS[url] = redis.Redis.from_url(url)
    return _BROKER_CLIENTS[url]


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def use_multiprocess_dir(folder: str) -> None:
    """Record samples in ``folder`` from now on, in this process and the ones it forks.
    prometheus_client picks its value class when imported; metrics with labels create
    their values when first used, so they land in the folder."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def registry(client: redis.Redis | None = None) -> CollectorRegistry:
    """What a scrape reads: every process's samples in multiprocess mode, this process's
    otherwise, and the queue depths (read with ``client``, else the runtime's)."""
    folder = multiprocess_dir()
    if folder:
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
    else:
        merged = _Both(REGISTRY)
    merged.register(QueueDepth(client=client))
    return merged


class _Both(CollectorRegistry):
    """A registry that reads another's collectors too (the default one, which collects
    nothing from Redis) without registering them twice."""

    def __init__(self, base: CollectorRegistry) -> None:
        super().__init__()
        self._base = base

    def collect(self) -> Iterator[Metric]:
        yield from self._base.collect()
        yield from super().collect()


def render() -> tuple[bytes, str]:
    """The body and content type of the REST API's ``GET /metrics``."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST
