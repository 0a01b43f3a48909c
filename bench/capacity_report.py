"""The tables of ``bench.capacity``: per run and per node costs, whose Redis commands,
the settings' effect, each component alone, and the sizing they imply. No I/O."""

from __future__ import annotations

import argparse
import math
import os
import platform
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.stats import markdown, number

if TYPE_CHECKING:
    from bench.capacity import Findings, Measured

#: the shapes the sizing table is worked out for
SIZED = ("chain-10", "diamond", "fan-out-50", "map-20")
RATES = (1_000, 10_000, 100_000)


def defaults(findings: Findings) -> list[Measured]:
    return [m for m in findings.measured if m.setting == "defaults"]


def label(m: Measured) -> str:
    return m.shape + ("" if m.setting == "defaults" else f" ({m.setting})")


def total(m: Measured, prefix: str) -> float:
    """The sum of a family of counters over the backlog: ``cmd:``, ``rows:``, ``bytes:``."""
    return sum(v for k, v in m.cost.items() if k.startswith(prefix))


def round_trips(m: Measured) -> float:
    """Commands clients sent per run (the slow-log pass), scripts' own calls left out."""
    if m.attributed is None:
        return math.nan
    kinds = m.attributed.kinds()
    return sum(v for k, v in kinds.items() if k != "script") / m.attributed_runs


def on_rabbitmq(m: Measured) -> bool:
    """Whether the broker of ``m``'s runs was RabbitMQ (``--rabbitmq-broker``)."""
    return "amqp:published" in m.cost


def messages(m: Measured) -> float:
    """Task messages per run: RabbitMQ's received count when it is the broker, else LPUSH."""
    return m.per_run("amqp:published" if on_rabbitmq(m) else "cmd:lpush")


#: what a run costs, each per run (the model fits a fixed part and a part per node)
METRICS: tuple[tuple[str, Callable[[Measured], float]], ...] = (
    ("Redis CPU, µs", lambda m: m.per_run("redis_cpu") * 1e6),
    ("Redis commands (scripts' calls included)", lambda m: total(m, "cmd:") / m.runs),
    ("Redis round trips (slow-log pass)", round_trips),
    ("Redis bytes in + out", lambda m: m.per_run("net_in") + m.per_run("net_out")),
    ("task messages", messages),
    ("worker CPU, ms", lambda m: m.per_run("cpu:workers") * 1000),
    ("PostgreSQL transactions", lambda m: m.per_run("xacts")),
    ("PostgreSQL rows written", lambda m: total(m, "rows:") / m.runs),
    ("PostgreSQL bytes stored", lambda m: total(m, "bytes:") / m.runs),
    ("WAL bytes", lambda m: m.per_run("wal")),
    ("PostgreSQL CPU, ms", lambda m: m.per_run("cpu:postgres") * 1000),
)
#: the shapes the fixed and per-node parts are fitted on: chains differ only in length
CHAINS = ("chain-1", "chain-3", "chain-10", "chain-40")


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b x``: (a, b); NaN with fewer than two points."""
    points = [(x, y) for x, y in points if not math.isnan(y)]
    if len(points) < 2:
        return math.nan, math.nan
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - b * mx, b


def model_table(findings: Findings) -> str:
    chains = [m for m in defaults(findings) if m.shape in CHAINS]
    by_shape = {m.shape: m for m in defaults(findings)}
    mapped, base = by_shape.get("map-20"), by_shape.get("chain-3")
    body = []
    for name, value in METRICS:
        fixed, per_node = fit([(m.nodes, value(m)) for m in chains])
        element = (value(mapped) - value(base)) / 20 if mapped and base else math.nan
        body.append([name, number(fixed), number(per_node, 2), number(element, 2)])
    header = ["per run of n nodes: fixed + n x per node", "fixed (per run)", "per node",
              "per map element (map-20 - chain-3) / 20"]  # fmt: skip
    return markdown(header, body)


def per_run_table(rows: list[Measured]) -> str:
    def line(m: Measured) -> list[str]:
        pg_bytes = total(m, "bytes:") / m.runs
        pg_rows = total(m, "rows:") / m.runs
        commands = total(m, "cmd:") / m.runs
        return [
            label(m),
            str(m.runs),
            number(m.nodes),
            number(m.runs / m.seconds),
            number(commands),
            number(commands / m.nodes),
            number(m.per_node("cmd:evalsha"), 2),
            number(m.per_node("net_in")),
            number(m.per_node("net_out")),
            number(m.per_node("redis_cpu") * 1e6),
            number(messages(m), 2),
            number(m.per_run("xacts"), 2),
            number(pg_rows),
            number(pg_bytes / 1024),
            number(m.per_run("wal") / 1024),
            number(m.per_node("cpu:workers") * 1000, 2),
            number(m.per_run("cpu:postgres") * 1000, 2),
            str(m.failed),
        ]

    header = [
        "shape",
        "runs",
        "nodes/run",
        "runs/s (load)",
        "Redis cmds/run",
        "cmds/node",
        "EVALSHA/node",
        "Redis B in/node",
        "Redis B out/node",
        "Redis CPU µs/node",
        "msgs/run",
        "PG xacts/run",
        "PG rows/run",
        "PG KB/run",
        "WAL KB/run",
        "worker CPU ms/node",
        "PG CPU ms/run",
        "failed",
    ]
    return markdown(header, [line(m) for m in rows])


def commands_table(rows: list[Measured], most: int = 14) -> str:
    totals: dict[str, float] = {}
    for m in rows:
        for k, v in m.cost.items():
            if k.startswith("cmd:"):
                totals[k] = totals.get(k, 0.0) + v / m.runs / m.nodes
    names = sorted(totals, key=totals.__getitem__, reverse=True)[:most]
    body = [[label(m)] + [number(m.per_node(k), 2) for k in names] for m in rows]
    return markdown(["shape"] + [k.removeprefix("cmd:").upper() for k in names], body)


def whose_table(rows: list[Measured]) -> str:
    body = []
    for m in rows:
        a = m.attributed
        if a is None:
            continue
        n = m.attributed_runs
        kinds = a.kinds()
        trips = sum(v for k, v in kinds.items() if k != "script")
        messages = sum(a.messages.values())
        queues = ", ".join(f"{q} {c / n:.2f}" for q, c in sorted(a.messages.items()))
        size = a.message_bytes / messages if messages else math.nan
        body.append(
            [
                label(m),
                str(n),
                *(number(kinds.get(k, 0) / n) for k in ("broker", "state", "results", "other")),
                number(trips / n / m.nodes),
                number(kinds.get("script", 0) / n / m.nodes),
                number(messages / n, 2),
                queues,
                number(size),
            ]
        )
    header = [
        "shape",
        "runs",
        "broker cmds/run",
        "state cmds/run",
        "results cmds/run",
        "other cmds/run",
        "round trips/node",
        "commands in scripts/node",
        "messages/run",
        "messages/run by queue",
        "bytes/message",
    ]
    return markdown(header, body)


def broker_commands_table(rows: list[Measured]) -> str:
    """The broker's commands per task message: what a message costs Redis."""
    body = []
    for m in rows:
        a = m.attributed
        messages = sum(a.messages.values()) if a else 0
        if a is None or not messages:
            continue
        broker = {k.split(":", 1)[1]: v for k, v in a.commands.items() if k.startswith("broker:")}
        cells = ", ".join(f"{k} {v / messages:.2f}" for k, v in sorted(broker.items()))
        body.append([label(m), number(sum(broker.values()) / messages, 1), cells])
    return markdown(["shape", "broker cmds/message", "by command, per message"], body)


def scripts_table(rows: list[Measured]) -> str:
    calls: Counter[str] = Counter()
    usec: Counter[str] = Counter()
    nodes = 0.0
    for m in rows:
        if m.attributed:
            calls.update(m.attributed.script_calls)
            usec.update(m.attributed.script_usec)
            nodes += m.attributed_runs * m.nodes
    body = [
        [s, str(c), number(c / nodes, 2), number(usec[s] / c, 1)] for s, c in calls.most_common()
    ]
    return markdown(["script", "calls", "calls/node (all shapes)", "µs/call (execution)"], body)


def settings_table(findings: Findings) -> str:
    shapes = {m.shape for m in findings.measured if m.setting != "defaults"}
    rows = [m for m in findings.measured if m.shape in shapes]
    rows.sort(key=lambda m: (m.shape, m.setting))
    body = [
        [
            m.shape,
            m.setting,
            number(m.nodes),
            number(messages(m), 2),
            number(total(m, "cmd:") / m.runs / m.nodes),
            number(m.per_node("redis_cpu") * 1e6),
            number(m.per_node("cpu:workers") * 1000, 2),
            number(m.per_run("xacts"), 2),
            number(total(m, "rows:") / m.runs),
            number(m.per_run("wal") / 1024),
            number(m.per_run("cpu:postgres") * 1000, 2),
            m.load,
        ]
        for m in rows
    ]
    header = [
        "shape",
        "setting",
        "nodes/run",
        "msgs/run",
        "Redis cmds/node",
        "Redis CPU µs/node",
        "worker CPU ms/node",
        "PG xacts/run",
        "PG rows/run",
        "WAL KB/run",
        "PG CPU ms/run",
        "load after",
    ]
    return markdown(header, body)


def tables_table(rows: list[Measured]) -> str:
    tables = sorted(
        {k.split(":", 1)[1] for m in rows for k, v in m.cost.items() if k.startswith("rows:") and v}
    )
    body = [
        [label(m)]
        + [f"{m.per_run('rows:' + t):.1f} / {m.per_run('bytes:' + t):,.0f}" for t in tables]
        for m in rows
    ]
    return markdown(["shape (rows / bytes per run)", *tables], body)


def rabbitmq_table(findings: Findings) -> str:
    rows = [m for m in findings.measured if on_rabbitmq(m)]
    if not rows:
        return "Not measured: `--rabbitmq-broker` runs the shapes with the broker on RabbitMQ."
    body = [
        [
            label(m),
            number(messages(m), 2),
            number(m.per_run("amqp:delivered"), 2),
            number(m.per_run("amqp:acked"), 2),
            number(m.per_run("broker_cpu") / messages(m) * 1e6) if messages(m) else "-",
            number(m.per_node("broker_cpu") * 1e6),
            number(total(m, "cmd:") / m.runs / m.nodes),
            number(m.per_node("redis_cpu") * 1e6),
        ]
        for m in rows
    ]
    header = ["shape", "msgs published/run", "delivered/run", "acked/run",
              "RabbitMQ CPU µs/msg", "RabbitMQ CPU µs/node", "state Redis cmds/node",
              "state Redis CPU µs/node"]  # fmt: skip
    return markdown(header, body)


def ceilings_table(findings: Findings) -> str:
    body = [
        [
            c.what,
            f"{c.count:,}",
            number(c.count / c.seconds),
            number(c.server_cpu * 1e6 / c.count, 2),
            number(c.per_cpu_second),
            number(c.commands / c.count, 2) if c.commands else "-",
            number(c.wal / c.count) if c.wal else "-",
            c.load,
            c.method,
        ]
        for c in findings.ceilings
    ]
    header = [
        "unit",
        "units",
        "units/s (wall)",
        "server CPU µs/unit",
        "units per server CPU-second",
        "Redis cmds/unit",
        "WAL B/unit",
        "load",
        "method",
    ]
    return markdown(header, body)


def broker_message_cpu(findings: Findings) -> float:
    """Redis CPU seconds per task message of the kombu loop (NaN without it)."""
    loop = next((c for c in findings.ceilings if c.what.startswith("task message")), None)
    return loop.server_cpu / loop.count if loop else math.nan


def masters(cores: float, headroom: float) -> str:
    """Redis masters (one core each) for ``cores`` of Redis CPU at ``headroom`` use."""
    return "-" if math.isnan(cores) else str(math.ceil(cores / headroom))


def sizing_table(findings: Findings, headroom: float) -> str:
    broker = broker_message_cpu(findings)
    body = []
    for m in defaults(findings):
        if m.shape not in SIZED:
            continue
        redis_cpu = m.per_node("redis_cpu")
        msgs = messages(m) / m.nodes
        state_cpu = redis_cpu if on_rabbitmq(m) else redis_cpu - msgs * broker
        rows = total(m, "rows:") / m.runs / m.nodes
        for rate in RATES:
            body.append(
                [
                    m.shape,
                    f"{rate:,}",
                    number(rate * m.per_node("cpu:workers")),
                    number(rate * redis_cpu),
                    masters(rate * redis_cpu, headroom),
                    number(rate * state_cpu),
                    masters(rate * state_cpu, headroom),
                    number(rate * msgs),
                    number(rate * m.per_node("xacts")),
                    number(rate * rows),
                    number(rate * m.per_node("wal") / 2**20, 2),
                    number(rate * m.per_node("cpu:postgres")),
                ]
            )
    header = [
        "shape",
        "nodes/s",
        "worker cores (engine only)",
        "Redis cores (all)",
        f"Redis masters at {headroom:.0%}",
        "Redis cores (state only, est.)",
        f"state masters at {headroom:.0%}",
        "broker msgs/s",
        "PG xacts/s",
        "PG rows/s",
        "WAL MB/s",
        "PG cores",
    ]
    return markdown(header, body)


def ceiling_lines(findings: Findings) -> list[str]:
    rows = defaults(findings)
    if not rows:
        return []
    per_node = {m.shape: m.per_node("redis_cpu") for m in rows}
    low, high = min(per_node.values()), max(per_node.values())
    broker = broker_message_cpu(findings)
    whose = "the run state alone" if any(on_rabbitmq(m) for m in rows) else "broker included"
    lines = [
        f"- One Redis core at 100 % carries {number(1 / high)} to {number(1 / low)} nodes/s "
        f"(1 / its CPU per node, {whose}: {number(low * 1e6)} to "
        f"{number(high * 1e6)} µs/node over the shapes above).",
    ]
    if not math.isnan(broker):
        lines.append(
            f"- One Redis core carries {number(1 / broker)} task messages/s as a "
            f"broker alone ({number(broker * 1e6)} µs of Redis CPU per message "
            "published, consumed and acked)."
        )
    return lines + broker_comparison(findings)


def broker_comparison(findings: Findings) -> list[str]:
    """The broker loop on RabbitMQ against the same loop on Redis, turn by turn
    (``--rabbitmq``): each loop's CPU per message and wall-clock rate."""
    loops = [c for c in findings.ceilings if "task message" in c.what]
    if not any(c.what.startswith("RabbitMQ") for c in loops):
        return []
    lines = ["- The broker loop, Redis and RabbitMQ in turn (server CPU per message, rate):"]
    for c in loops:
        server = "RabbitMQ (beam.smp)" if c.what.startswith("RabbitMQ") else "Redis"
        lines.append(
            f"  - {server}: {number(c.server_cpu * 1e6 / c.count)} µs per message, "
            f"{number(c.per_cpu_second)} messages per CPU-second, "
            f"{number(c.count / c.seconds)} messages/s wall clock (load {c.load})."
        )
    return lines


SECTIONS: tuple[tuple[str, str, Callable[[Findings, argparse.Namespace], str]], ...] = (
    (
        "The model: a fixed part per run and a part per node",
        "Least squares over chain-1, chain-3, chain-10 and chain-40 (default settings), "
        "which differ only in length; a map element is the difference of map-20 (3 nodes "
        "and 20 elements) and chain-3, over 20. Fan-outs and joins add broker messages "
        "(below) and about 10 Redis commands per join arrival.",
        lambda f, a: model_table(f),
    ),
    (
        "Per run and per node (default settings)",
        "Totals of a backlog over its runs and nodes, the idle workers' share taken out.",
        lambda f, a: per_run_table(defaults(f)),
    ),
    (
        "Redis commands per node, by name",
        "INFO commandstats: the commands a Lua script calls are counted too (the slow-log "
        "pass below tells round trips from them).",
        lambda f, a: commands_table(f.measured),
    ),
    (
        "Whose commands: broker, run state, results (slow-log pass)",
        "A quarter-size backlog with every command logged (`slowlog-log-slower-than 0`), "
        "attributed by the key it names (bench/attribution.py). Round trips are the commands "
        "clients sent; the commands scripts call are no round trip.",
        lambda f, a: whose_table(f.measured),
    ),
    (
        "What a task message costs the broker (slow-log pass)",
        "",
        lambda f, a: broker_commands_table(f.measured),
    ),
    (
        "Lua scripts (slow-log pass)",
        "Execution time as the slow log records it: the script alone, no network I/O.",
        lambda f, a: scripts_table(defaults(f)),
    ),
    (
        "PostgreSQL by table",
        "pg_stat_user_tables n_tup_ins + n_tup_upd + n_tup_del, and pg_total_relation_size "
        "growth (heap, indexes, TOAST; pages, so small runs round to 8 KB steps).",
        lambda f, a: tables_table(f.measured),
    ),
    (
        "The settings' effect",
        "`WFRUNNER_INLINE_MS=0`: every node its own task message. The 100 ms nodes run "
        "long enough (2 s a run) to be flushed to PostgreSQL while running.",
        lambda f, a: settings_table(f),
    ),
    (
        "The broker on RabbitMQ",
        "With `--rabbitmq-broker` (WFRUNNER_BROKER_URL on a private RabbitMQ node), the "
        "Redis holds the run state alone: its commands and CPU above are the state's. "
        "Messages are the node's global counters (rabbit_global_counters: received, "
        "delivered, acknowledged); its CPU is its beam.smp's, the idle node's share taken "
        "out.",
        lambda f, a: rabbitmq_table(f),
    ),
    ("Each component alone", "", lambda f, a: ceilings_table(f)),
    (
        "Sizing (arithmetic from the figures above)",
        "Per node cost x rate. Worker cores are the engine's own CPU (a no-op handler): add "
        "your handlers' CPU. 'State only' takes the broker loop's Redis CPU per message out "
        "of the measured Redis CPU (an estimate: a broker moved elsewhere). Masters: cores "
        "/ headroom, rounded up; a master is one Redis core of this machine.",
        lambda f, a: sizing_table(f, a.headroom),
    ),
)


def report(
    findings: Findings, args: argparse.Namespace, started: str, commit: str, argv: str
) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"# Capacity: what a run costs ({started})",
        "",
        f"`python -m bench.capacity {argv}` at commit `{commit}` on {platform.node()}, "
        f"{os.cpu_count()} CPUs shared with other sessions, load average {load} at the end. "
        "A private redis-server and a private PostgreSQL (initdb, default settings: fsync "
        "and synchronous_commit on); one worker process `-c 2` (`-c 8` for the 100 ms "
        "nodes); task events off (production's default); counts are exact, rates are "
        "this loaded machine's.",
        "",
        f"The runs' broker: {getattr(args, 'broker', 'the private Redis')}.",
        "",
        *ceiling_lines(findings),
        "",
    ]
    for title, text, table in SECTIONS:
        lines += [f"## {title}", ""] + ([text, ""] if text else []) + [table(findings, args), ""]
    return "\n".join(lines)
