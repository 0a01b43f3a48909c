"""The server-side counters of ``bench.capacity``, read before and after a phase.

Every counter is a named number in one flat dict, so a phase's cost is one subtraction
and the idle machine's share (workers polling the broker, Redis's own cron, PostgreSQL's
background writers) one more: :func:`idle_rate` measures it with the workers up and no
run, and :func:`phase_cost` takes ``rate x seconds`` out.

Names: ``cmd:<command>`` calls and ``usec:<command>`` microseconds (Redis ``INFO
commandstats``: an EVALSHA counts once, whatever its script runs), ``net_in`` /
``net_out`` (``INFO stats`` total_net_input_bytes / total_net_output_bytes), ``redis_cpu``
(``INFO cpu`` used_cpu_sys + used_cpu_user, s), ``cpu:workers`` / ``cpu:postgres`` (s,
:func:`bench.infra.cpu_seconds`), ``rows:<table>`` (pg_stat_user_tables n_tup_ins +
n_tup_upd + n_tup_del), ``bytes:<table>`` (pg_total_relation_size), ``wal`` (bytes of
WAL written: exact only on a private server, which serves nobody else) and ``xacts``
(committed transactions of the bench database, the benchmark's own taken out). With the
broker on RabbitMQ, :func:`bench.rabbitmq.counters` adds ``amqp:published`` /
``amqp:delivered`` / ``amqp:acked`` (messages) and ``broker_cpu`` (its beam.smp, s).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.infra import cpu_seconds
from bench.measure import Side

Counters = dict[str, float]

_TABLES = (
    "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del, pg_total_relation_size(relid) "
    "FROM pg_stat_user_tables"
)


@dataclass
class Reading:
    at: float  # time.monotonic()
    counters: Counters


def redis_counters(side: Side) -> Counters:
    """Commands by name, bytes in and out and CPU seconds of the Redis server so far."""
    found: Counters = {}
    for key, stats in side.redis.info("commandstats").items():
        name = key.removeprefix("cmdstat_")
        found[f"cmd:{name}"] = stats["calls"]
        found[f"usec:{name}"] = stats["usec"]
    info = side.redis.info()
    found["net_in"] = info["total_net_input_bytes"]
    found["net_out"] = info["total_net_output_bytes"]
    found["redis_cpu"] = info["used_cpu_sys"] + info["used_cpu_user"]
    return found


def postgres_counters(side: Side) -> Counters:
    """Rows written and bytes held by table, WAL position and transactions so far."""
    assert side.db is not None
    found: Counters = {"xacts": side.db.transactions()}  # it publishes the backends' counts
    for table, rows, size in side.db.rows(_TABLES):
        found[f"rows:{table}"] = rows
        found[f"bytes:{table}"] = size
    found["wal"] = float(side.db.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))
    found["own_statements"] = side.db.statements  # before this reading's last statement
    return found


def read(side: Side) -> Reading:
    cpu = cpu_seconds(side.rss.pids, side.redis_pid, side.postgres_pid)
    counters = {**redis_counters(side), **postgres_counters(side)}
    counters["cpu:workers"] = cpu["workers"]
    counters["cpu:postgres"] = cpu["postgres"]
    counters["own_commands"] = side.own_commands
    if side.broker_counters is not None:
        counters.update(side.broker_counters())
    return Reading(time.monotonic(), counters)


def difference(before: Reading, after: Reading, side: Side) -> Counters:
    """after - before, the benchmark's own commands and statements taken out: its INFO
    calls, its queue polls (LLEN of each queue and HLEN of ``unacked``) and its SQL."""
    keys = set(before.counters) | set(after.counters)
    delta = {k: after.counters.get(k, 0.0) - before.counters.get(k, 0.0) for k in keys}
    polls = delta.pop("own_commands")
    delta.pop("cmd:info", None)
    delta.pop("usec:info", None)
    per_look = len(side.queues) + 1  # side.idle(): one LLEN per queue and one HLEN
    looks = polls / per_look
    if looks:
        delta["cmd:llen"] = delta.get("cmd:llen", 0.0) - looks * len(side.queues)
        delta["cmd:hlen"] = delta.get("cmd:hlen", 0.0) - looks
    delta["xacts"] -= delta.pop("own_statements")
    return delta


def idle_rate(side: Side, seconds: float) -> Counters:
    """What the counters grow by per second with the workers up and nothing to run."""
    side.settle()
    before = read(side)
    time.sleep(seconds)
    after = read(side)
    span = after.at - before.at
    return {k: v / span for k, v in difference(before, after, side).items()}


def phase_cost(before: Reading, after: Reading, side: Side, idle: Mapping[str, float]) -> Counters:
    """The counters' growth over a phase, the idle machine's share taken out (never below
    zero: a counter the phase did not move stays at 0)."""
    span = after.at - before.at
    delta = difference(before, after, side)
    return {k: max(v - idle.get(k, 0.0) * span, 0.0) for k, v in delta.items()}
