"""The two phases of every scenario, for either side.

Throughput: a backlog of N runs is sent at once; the time is from the first send to the
last run's end as the side recorded it (wfrunner's ``runs.completed_at``, Celery's
``date_done`` of the last task), so how often the benchmark looks does not matter. The
same timestamps minus each run's send time give the latency under load. The meters are
read around this phase, once the workers are idle again (queues and the ``unacked`` hash
empty), and the benchmark's own commands and statements are taken out of them.

Latency: one run at a time, from the send to the moment the caller has the result
(Celery ``.get()``; wfrunner ``start_run.delay(...).get()`` then ``wait_for_run``, polling
every 5 ms), after one warm-up run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from bench.infra import (
    BenchError,
    Database,
    EventCounter,
    RssSampler,
    command_count,
    cpu_seconds,
)
from bench.stats import Result

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass
class Side:
    """One engine under test: its app, its Redis database, its meters."""

    name: str
    app: Any
    redis: redis.Redis
    queues: list[str]
    events: EventCounter
    rss: RssSampler
    db: Database | None = None
    timeout: float = 600
    own_commands: int = 0  # commands this process sent that are not the engine's cost
    redis_pid: int | None = None  # the private Redis server's (its CPU is measured)
    postgres_pid: int | None = None  # a private PostgreSQL's postmaster (only its CPU)
    #: a broker other than ``redis`` (bench.capacity --rabbitmq-broker): its ready
    #: messages in ``queues``, and its counters (messages, CPU) read with Redis's
    broker_depth: Callable[[], int] | None = None
    broker_counters: Callable[[], dict[str, float]] | None = None

    def idle(self) -> bool:
        if self.broker_depth is not None:
            return self.broker_depth() == 0
        pipe = self.redis.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue)
        pipe.hlen("unacked")
        self.own_commands += len(self.queues) + 1
        return not any(pipe.execute())

    def settle(self) -> None:
        """Wait until the workers have nothing queued or running (two looks 0.1 s apart)."""
        deadline = time.monotonic() + self.timeout
        quiet = 0
        while quiet < 2:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: the queues did not drain in {self.timeout:.0f} s")
            quiet = quiet + 1 if self.idle() else 0
            time.sleep(0.1)
        time.sleep(0.5)  # the last task events are on their way


class Meter:
    """Redis commands, PostgreSQL transactions, task messages and peak RSS of one phase."""

    def __init__(self, side: Side) -> None:
        self.side = side
        side.settle()
        self.commands = command_count(side.redis)
        self.own = side.own_commands
        self.transactions = side.db.transactions() if side.db else 0
        self.statements = side.db.statements if side.db else 0
        self.received = side.events.received
        self.names = dict(side.events.names)
        self.since = side.rss.mark()
        self.cpu = cpu_seconds(side.rss.pids, side.redis_pid, side.postgres_pid)

    def stop(self, result: Result) -> None:
        side = self.side
        side.settle()
        runs = max(result.runs, 1)
        result.rss_mb = side.rss.peak_mb(self.since)
        cpu = cpu_seconds(side.rss.pids, side.redis_pid, side.postgres_pid)
        result.cpu_ms = {kind: (cpu[kind] - self.cpu[kind]) * 1000 / runs for kind in cpu}
        result.messages = (side.events.received - self.received) / runs
        result.message_kinds = {
            name: (count - self.names.get(name, 0)) / runs
            for name, count in side.events.names.items()
            if count > self.names.get(name, 0)
        }
        if side.db:
            transactions = side.db.transactions()
            own = side.db.statements - self.statements  # polls, and this reading's own
            result.pg_transactions = (transactions - self.transactions - own) / runs
        commands = command_count(side.redis) - self.commands - (side.own_commands - self.own)
        result.redis_commands = commands / runs


def epoch(value: str | datetime) -> float:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def wait_for(done: Callable[[], bool], side: Side, what: str) -> None:
    deadline = time.monotonic() + side.timeout
    while not done():
        if time.monotonic() > deadline:
            raise BenchError(f"{side.name}: {what} did not finish in {side.timeout:.0f} s")
        time.sleep(0.02)


# --- plain Celery -------------------------------------------------------------------------


def celery_backlog(side: Side, result: Result, send: Callable[[], Any]) -> None:
    """``send`` publishes one run and returns the AsyncResult of its last task."""
    meter = Meter(side)
    started = time.time()
    sent: dict[str, float] = {}
    for _ in range(result.runs):
        sent[send().id] = time.time()
    ids = set(sent)
    wait_for(lambda: side.events.done(ids) == len(ids), side, "the backlog")
    ended = time.time()
    stamps = celery_done_times(side, list(sent))
    if stamps:
        result.load_latency = [stamps[i] - sent[i] for i in stamps]
        ended = max(stamps.values())
    result.elapsed = ended - started
    meter.stop(result)


def celery_done_times(side: Side, ids: list[str]) -> dict[str, float]:
    """``date_done`` of stored results (none for tasks that ignore theirs)."""
    stamps = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        side.own_commands += 1
        raws = side.redis.mget([f"celery-task-meta-{i}" for i in chunk])
        for task_id, raw in zip(chunk, raws, strict=True):
            if raw:
                stamps[task_id] = epoch(json.loads(raw)["date_done"])
    return stamps


def celery_latency(side: Side, result: Result, send: Callable[[], Any], count: int) -> None:
    send().get(timeout=side.timeout)  # warm-up
    for _ in range(count):
        started = time.perf_counter()
        send().get(timeout=side.timeout)
        result.latency.append(time.perf_counter() - started)


# --- wfrunner -----------------------------------------------------------------------------


def wfrunner_backlog(side: Side, result: Result, workflow_id: str) -> None:
    from wfrunner import start_run

    assert side.db is not None
    meter = Meter(side)
    started = time.time()
    sent: dict[str, float] = {}
    for _ in range(result.runs):
        sent[start_run.delay(workflow_id, {"x": 1}).id] = time.time()
    ids = list(sent)
    finished = (
        "SELECT count(*) FROM runs WHERE id = ANY(:ids) AND status IN "
        "('COMPLETED', 'FAILED', 'CANCELLED')"
    )
    deadline = time.monotonic() + side.timeout
    while side.db.scalar(finished, ids=ids) < len(ids):
        if time.monotonic() > deadline:
            raise BenchError(f"wfrunner: the backlog did not finish in {side.timeout:.0f} s")
        time.sleep(0.2)
    rows = side.db.rows(
        "SELECT id, status, extract(epoch FROM completed_at) FROM runs WHERE id = ANY(:ids)",
        ids=ids,
    )
    result.failed = sum(1 for _, status, _ in rows if status != "COMPLETED")
    result.load_latency = [float(done) - sent[run_id] for run_id, _, done in rows]
    result.elapsed = max(float(done) for _, _, done in rows) - started
    meter.stop(result)


def wfrunner_one(side: Side, workflow_id: str) -> tuple[float, dict[str, Any]]:
    from wfrunner import start_run, wait_for_run

    started = time.perf_counter()
    run_id = start_run.delay(workflow_id, {"x": 1}).get(timeout=side.timeout)
    doc = wait_for_run(run_id, timeout=side.timeout, interval=0.005)
    return time.perf_counter() - started, doc


def wfrunner_latency(side: Side, result: Result, workflow_id: str, count: int) -> None:
    _, doc = wfrunner_one(side, workflow_id)  # warm-up; it also tells the nodes per run
    if doc["status"] != "COMPLETED":
        raise BenchError(f"wfrunner {result.name}: the warm-up run ended {doc['status']}: {doc}")
    result.nodes_per_run = doc["stats"]["nodes_executed"]
    for _ in range(count):
        seconds, doc = wfrunner_one(side, workflow_id)
        if doc["status"] != "COMPLETED":
            result.failed += 1
        result.latency.append(seconds)
