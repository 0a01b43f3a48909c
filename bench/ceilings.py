"""Each component alone, on this machine: what one Redis does per broker message, and what
one PostgreSQL connection does per event row written as wfrunner writes them.

The figures are counts and CPU: the server's CPU per message or per row is what sets its
ceiling (a single-threaded Redis saturates at 1 CPU-second per second), and CPU is far less
at the mercy of the other sessions on the machine than a wall-clock rate, which is given
too, with the load average beside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.counters import redis_counters
from bench.infra import cpu_seconds, url_of
from bench.measure import Side

if TYPE_CHECKING:
    from tests.brokers import RabbitMQ


@dataclass
class Ceiling:
    """One isolation measurement: ``count`` units in ``seconds`` of wall clock."""

    what: str  # what a unit is
    method: str
    count: int
    seconds: float
    server_cpu: float  # seconds of the server's CPU
    commands: float = 0.0  # Redis commands (Redis ceilings)
    wal: float = 0.0  # WAL bytes (PostgreSQL ceilings)
    load: str = ""

    @property
    def per_cpu_second(self) -> float:
        """Units one core of the server carries at 100 % (the ceiling)."""
        return self.count / self.server_cpu if self.server_cpu else float("nan")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


#: the queue (and exchange, and routing key) of the broker loops
LOOP_QUEUE = "bench.capacity"
Read = Callable[[], dict[str, float]]


def kombu_loop(
    url: str, queue: Any, options: dict[str, Any], body_bytes: int, count: int, read: Read
) -> tuple[float, dict[str, float]]:
    """Publish ``count`` messages of about ``body_bytes`` through kombu (as Celery's
    producer does, persistent), then consume and acknowledge them one by one with prefetch
    1 (as a Celery worker with late acks does). ``read`` reads the server's counters
    before and after (after a warm-up message has declared the queue): the wall-clock
    seconds and the counters' growth."""
    from kombu import Connection

    body = "x" * body_bytes
    received = 0

    def on_message(_: Any, message: Any) -> None:
        nonlocal received
        received += 1
        message.ack()

    with Connection(url, transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        producer.publish(
            "warm-up", exchange=queue.exchange, routing_key=LOOP_QUEUE, declare=[queue]
        )
        before, started = read(), time.perf_counter()
        for _ in range(count):
            producer.publish(body, exchange=queue.exchange, routing_key=LOOP_QUEUE, delivery_mode=2)
        with conn.Consumer(queue, callbacks=[on_message], prefetch_count=1):
            while received < count + 1:
                conn.drain_events(timeout=10)
        seconds = time.perf_counter() - started
        after = read()
        queue(conn.default_channel).delete()
    return seconds, {k: after[k] - before.get(k, 0.0) for k in after}


def broker_loop(side: Side, body_bytes: int, count: int) -> Ceiling:
    """:func:`kombu_loop` on the private Redis, through kombu's Redis transport (LPUSH
    after reading the exchange's bindings; its ack emulation keeps each message in
    ``unacked`` until acked)."""
    from kombu import Exchange, Queue

    queue = Queue(LOOP_QUEUE, Exchange(LOOP_QUEUE, type="direct"), LOOP_QUEUE)

    def read() -> dict[str, float]:
        return {**redis_counters(side), "server_cpu": _redis_cpu(side)}

    seconds, grew = kombu_loop(
        url_of(side.redis), queue, {"visibility_timeout": 3600}, body_bytes, count, read
    )
    commands = sum(v for k, v in grew.items() if k.startswith("cmd:") and k != "cmd:info")
    return Ceiling(
        "task message (publish + consume + ack)",
        f"kombu publish of {count:,} messages of {body_bytes:,} B, then consume with "
        "prefetch 1 and ack each, on the private Redis; its INFO used_cpu and commandstats",
        count,
        seconds,
        grew["server_cpu"],
        commands,
        load=load(),
    )


def rabbitmq_loop(node: RabbitMQ, body_bytes: int, count: int) -> Ceiling:
    """:func:`kombu_loop` on a private RabbitMQ node, with wfrunner's declarations: a
    durable quorum queue on a topic exchange, and publishes that wait for the broker's
    confirm (``confirm_publish``), as wfrunner's app sets them for an amqp:// broker."""
    from bench import rabbitmq
    from wfrunner.tasks.broker import amqp_queues

    (queue,) = amqp_queues((LOOP_QUEUE,))
    seconds, grew = kombu_loop(
        rabbitmq.url(node),
        queue,
        {"confirm_publish": True},
        body_bytes,
        count,
        lambda: {"server_cpu": rabbitmq.beam_cpu(node)},
    )
    return Ceiling(
        "RabbitMQ task message (publish + consume + ack)",
        f"kombu publish of {count:,} messages of {body_bytes:,} B with confirm_publish to "
        "a durable quorum queue on a topic exchange (wfrunner's declarations), then consume "
        f"with prefetch 1 and ack each, on a private {rabbitmq.describe(node)} "
        "node; the CPU of its beam.smp (psutil)",
        count,
        seconds,
        grew["server_cpu"],
        load=load(),
    )


def _redis_cpu(side: Side) -> float:
    info = side.redis.info("cpu")
    return float(info["used_cpu_sys"] + info["used_cpu_user"])


def redis_benchmark(side: Side, body_bytes: int, requests: int) -> list[Ceiling]:
    """``redis-benchmark -t lpush,rpop``: Redis's own upper bound for a queue's push and
    pop (no acks, no bindings), 16 clients, no pipelining."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return []
    port = side.redis.connection_pool.connection_kwargs["port"]
    found = []
    for test in ("lpush", "rpop"):
        cpu, started = _redis_cpu(side), time.perf_counter()
        subprocess.run(
            [
                binary,
                "-p",
                str(port),
                "-n",
                str(requests),
                "-c",
                "16",
                "-d",
                str(body_bytes),
                "-t",
                test,
                "-q",
            ],
            check=True,
            capture_output=True,
        )
        seconds, used = time.perf_counter() - started, _redis_cpu(side) - cpu
        found.append(
            Ceiling(
                f"{test.upper()} of {body_bytes:,} B",
                f"redis-benchmark -t {test} -n {requests:,} -c 16 -d {body_bytes} -q",
                requests,
                seconds,
                used,
                requests,
                load=load(),
            )
        )
    side.redis.delete("mylist")  # redis-benchmark's key
    return found


#: the events part of sql/end_run.sql (the flush's insert has the same shape)
_INSERT = (
    "INSERT INTO event_log (run_id, seq, type, node_id, data) "
    "SELECT :run_id, :first + e.n - 1, e.v ->> 'type', e.v ->> 'node_id', e.v -> 'data' "
    "FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e (v, n)"
)


def postgres_inserts(side: Side, batch: int, seconds: float) -> Ceiling:
    """One connection inserting event rows, ``batch`` per transaction, for ``seconds``:
    rows copied from the event log the runs wrote (their real sizes), under one of those
    runs with fresh sequence numbers (the same primary key, foreign key and indexes)."""
    import json

    import sqlalchemy as sa

    assert side.db is not None
    events = [
        {"type": t, "node_id": n, "data": d}
        for t, n, d in side.db.rows("SELECT type, node_id, data FROM event_log LIMIT 1000")
    ]
    run_id = side.db.scalar("SELECT run_id FROM event_log LIMIT 1")
    rows = [json.dumps([events[(i + j) % len(events)] for j in range(batch)]) for i in range(50)]
    engine = sa.create_engine(side.db.url)
    first = 10_000_000 + int(side.db.scalar("SELECT coalesce(max(seq), 0) FROM event_log"))
    wal = float(side.db.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))
    cpu, started, count = _pg_cpu(side), time.perf_counter(), 0
    with engine.connect() as conn:
        while time.perf_counter() - started < seconds:
            params = {"run_id": run_id, "first": first + count, "events": rows[count % 50]}
            conn.execute(sa.text(_INSERT), params)
            conn.commit()
            count += batch
    elapsed, used = time.perf_counter() - started, _pg_cpu(side) - cpu
    wal = float(side.db.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")) - wal
    engine.dispose()
    side.db.scalar(
        "WITH gone AS (DELETE FROM event_log WHERE seq >= :first RETURNING 1) "
        "SELECT count(*) FROM gone",
        first=first,
    )
    return Ceiling(
        f"event row, {batch} per transaction",
        f"one connection: INSERT ... SELECT FROM jsonb_array_elements (end_run.sql's shape) "
        f"of {batch} event row(s) and COMMIT, for {seconds:.0f} s; fsync and "
        "synchronous_commit on",
        count,
        elapsed,
        used,
        wal=wal,
        load=load(),
    )


def _pg_cpu(side: Side) -> float:
    return cpu_seconds([], None, side.postgres_pid)["postgres"]


def measure_all(
    side: Side, body_bytes: int, quick: bool, node: RabbitMQ | None = None
) -> list[Ceiling]:
    """Every component alone. With a RabbitMQ ``node``, the broker loop runs on it and on
    the Redis in turn, twice each, so both see the same minutes of a shared machine."""
    messages = 2_000 if quick else 10_000
    found = [broker_loop(side, body_bytes, messages)]
    if node is not None:
        for turn in range(2):
            found.append(rabbitmq_loop(node, body_bytes, messages))
            if turn == 0:
                found.append(broker_loop(side, body_bytes, messages))
    found += redis_benchmark(side, body_bytes, 20_000 if quick else 200_000)
    for batch in (1, 10, 100, 1000):
        found.append(postgres_inserts(side, batch, 2 if quick else 5))
    return found
