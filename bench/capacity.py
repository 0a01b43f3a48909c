"""What a run costs, by workflow shape, counted on the servers: the capacity model's input.

Run from the repository root::

    python -m bench.capacity              # every shape and setting (about 15 minutes)
    python -m bench.capacity --quick      # smaller backlogs: a smoke run

It starts a Redis and a PostgreSQL of its own (nobody else's commands, WAL or CPU are
counted), one worker ``-c 2`` (``-c 8`` for the sleeping nodes), and for each setting and
shape sends a backlog of runs and reads, before and after, Redis's commands by name, bytes
in and out and CPU, the task messages published (LPUSH), PostgreSQL's rows written and
bytes by table, WAL and transactions, and the workers' and PostgreSQL's CPU
(:mod:`bench.counters`); what the idle workers cost over the same seconds is taken out. A
second, smaller backlog of each shape runs with Redis logging every command
(:mod:`bench.attribution`): which commands are the broker's and which the run state's,
the messages by queue, and what each Lua script costs. Then each component alone
(:mod:`bench.ceilings`; ``--rabbitmq`` runs the broker loop on a private RabbitMQ node
too). ``--rabbitmq-broker`` moves the broker of the runs to such a node: the Redis then
holds the run state alone. Prints the tables and writes them to ``--out``; docs/scaling.md
reads its figures from there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import attribution, ceilings, counters, infra, rabbitmq, workflows
from bench.capacity_report import report
from bench.compare import DEFAULT_PG, Bench, progress
from bench.infra import BenchError, PrivatePostgres
from bench.measure import Side, wfrunner_backlog, wfrunner_one
from bench.stats import Result


@dataclass(frozen=True)
class Shape:
    name: str
    definition: dict[str, Any]
    runs: int  # the backlog (about 2,000 nodes)
    #: handler calls per run, when they are not the nodes executed: a map node is one
    #: node that calls its handler once per element, each at about a node's cost
    calls: int = 0


SHAPES = (
    Shape("chain-1", workflows.chain(1), 800),
    Shape("chain-3", workflows.chain(3), 600),
    Shape("chain-10", workflows.chain(10), 200),
    Shape("chain-40", workflows.chain(40), 50),
    Shape("diamond", workflows.diamond(), 500),
    Shape("fan-out-10", workflows.fan_out(10), 160),
    Shape("fan-out-50", workflows.fan_out(50), 40),
    Shape("loop-10", workflows.loop(10), 100),
    Shape("map-20", workflows.map_items(20), 100, calls=22),
    Shape("chain-20x100ms", workflows.slow_chain(20, 100), 40),
)


@dataclass(frozen=True)
class Setting:
    """Worker settings of a pass: its environment, the shapes it runs, its pool size."""

    name: str
    env: dict[str, str]
    shapes: tuple[str, ...]
    concurrency: int = 2
    attribute: bool = False  # also run the slow-log pass


NOOP_SHAPES = (
    "chain-1",
    "chain-3",
    "chain-10",
    "chain-40",
    "diamond",
    "fan-out-10",
    "fan-out-50",
    "loop-10",
    "map-20",
)
SETTINGS = (
    Setting("defaults", {}, NOOP_SHAPES, attribute=True),
    Setting(
        "WFRUNNER_INLINE_MS=0",
        {"WFRUNNER_INLINE_MS": "0"},
        ("chain-10", "diamond", "fan-out-10", "map-20"),
    ),
    Setting(
        "100 ms nodes, WFRUNNER_FLUSH_INTERVAL=1",
        {"WFRUNNER_FLUSH_INTERVAL": "1"},
        ("chain-20x100ms",),
        concurrency=8,
        attribute=True,
    ),
    Setting(
        "100 ms nodes, WFRUNNER_FLUSH_INTERVAL=5",
        {"WFRUNNER_FLUSH_INTERVAL": "5"},
        ("chain-20x100ms",),
        concurrency=8,
        attribute=True,
    ),
)
#: every variable a setting may set, cleared before each pass
_KNOWN = ("WFRUNNER_INLINE_MS", "WFRUNNER_FLUSH_INTERVAL")


@dataclass
class Measured:
    """One shape under one setting: the backlog's totals, the idle share taken out."""

    setting: str
    shape: str
    runs: int
    nodes: float  # per run: nodes executed (the run document's stats), or handler calls
    seconds: float
    cost: counters.Counters
    load: str
    failed: int = 0
    attributed: attribution.Attribution | None = None
    attributed_runs: int = 0

    def per_run(self, key: str) -> float:
        return self.cost.get(key, 0.0) / self.runs

    def per_node(self, key: str) -> float:
        return self.per_run(key) / self.nodes


@dataclass
class Findings:
    measured: list[Measured] = field(default_factory=list)
    idle: dict[str, counters.Counters] = field(default_factory=dict)  # setting -> rates
    ceilings: list[ceilings.Ceiling] = field(default_factory=list)


def measure_shape(
    side: Side, shape: Shape, setting: Setting, idle: counters.Counters, scale: float
) -> Measured:
    import wfrunner

    workflow_id = wfrunner.register_workflow(shape.definition)
    _, doc = wfrunner_one(side, workflow_id)  # warm-up; it tells the nodes per run
    if doc["status"] != "COMPLETED":
        raise BenchError(f"{shape.name}: the warm-up run ended {doc['status']}: {doc}")
    runs = max(2, round(shape.runs * scale))
    progress(f"{setting.name}: {shape.name}, a backlog of {runs}")
    side.settle()
    before = counters.read(side)
    result = Result("wfrunner", shape.name, runs=runs)
    wfrunner_backlog(side, result, workflow_id)
    after = counters.read(side)
    found = Measured(
        setting.name,
        shape.name,
        runs,
        float(shape.calls or doc["stats"]["nodes_executed"]),
        after.at - before.at,
        counters.phase_cost(before, after, side, idle),
        ceilings.load(),
        result.failed,
    )
    if setting.attribute:
        found.attributed_runs = max(2, runs // 4)
        attribution.start(side.redis)
        wfrunner_backlog(
            side, Result("wfrunner", shape.name, runs=found.attributed_runs), workflow_id
        )
        found.attributed = attribution.stop(side.redis, side.queues)
    return found


def run_setting(bench: Bench, setting: Setting, findings: Findings) -> None:
    for name in _KNOWN:
        bench.env.pop(name, None)
    bench.env.update(setting.env)
    with bench.workers("wfrunner", 1, setting.concurrency) as side:
        idle = counters.idle_rate(side, 3 if bench.args.quick else 6)
        findings.idle[setting.name] = idle
        for shape in SHAPES:
            if shape.name in setting.shapes and selected(bench.args, shape.name):
                findings.measured.append(measure_shape(side, shape, setting, idle, _scale(bench)))


def selected(args: argparse.Namespace, name: str) -> bool:
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    return not wanted or name in wanted


def _scale(bench: Bench) -> float:
    return float(bench.args.scale) * (0.25 if bench.args.quick else 1.0)


def message_bytes(findings: Findings) -> int:
    """The mean task message the runs published (the slow-log pass), for the broker loop."""
    sizes = [
        (m.attributed.message_bytes, sum(m.attributed.messages.values()))
        for m in findings.measured
        if m.attributed
    ]
    total, count = sum(s for s, _ in sizes), sum(n for _, n in sizes)
    return round(total / count) if count else 1500


def measure(bench: Bench) -> Findings:
    findings = Findings()
    for setting in SETTINGS:
        if any(selected(bench.args, s) for s in setting.shapes):
            run_setting(bench, setting, findings)
    if not bench.args.no_ceilings:
        side = bench.side("wfrunner")
        progress("each component alone")
        findings.ceilings = ceilings.measure_all(
            side, message_bytes(findings), bench.args.quick, bench.rabbitmq
        )
    return findings


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a quarter of every backlog")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every backlog")
    parser.add_argument("--only", default="", help="comma-separated shape names")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the components alone")
    parser.add_argument(
        "--rabbitmq",
        action="store_true",
        help="also run the broker loop on a private RabbitMQ node (rabbitmq-server), in "
        "turn with the Redis one",
    )
    parser.add_argument(
        "--rabbitmq-broker",
        action="store_true",
        help="run the shapes with WFRUNNER_BROKER_URL on a private RabbitMQ node (the run "
        "state stays on the private Redis)",
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=0.5,
        help="share of a server's capacity the sizing uses (0.5)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds a phase may take")
    parser.add_argument(
        "--out", type=Path, default=infra.ROOT / "bench" / "results" / "capacity-latest.md"
    )
    args = parser.parse_args(argv)
    # what Bench reads: always a private Redis and PostgreSQL (exact, and nobody else's)
    args.private_redis, args.redis_url, args.pg_url = True, "", DEFAULT_PG
    return args


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(infra.ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def on_rabbitmq(side: Side, node: Any) -> None:
    """The side's broker is ``node``: idle when its queues are, its counters read too."""
    side.broker_depth = lambda: rabbitmq.depth(node, side.queues)
    side.broker_counters = lambda: rabbitmq.counters(node)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.strftime("%Y-%m-%d %H:%M")
    with ExitStack() as stack:
        postgres = PrivatePostgres()
        stack.callback(postgres.close)
        args.pg_url = postgres.url
        node = rabbitmq.start(stack) if args.rabbitmq or args.rabbitmq_broker else None
        if node is not None and args.rabbitmq_broker:  # before Bench copies the environment
            os.environ["WFRUNNER_BROKER_URL"] = rabbitmq.url(node)
        bench = Bench(args, stack)
        bench.postgres_pid = postgres.pid
        bench.rabbitmq = node if args.rabbitmq else None
        # production's default: no task events (messages are counted by LPUSH or RabbitMQ)
        for env in (os.environ, bench.env):
            env["WFRUNNER_TASK_EVENTS"] = "0"
        if node is not None and args.rabbitmq_broker:  # side() configures the app: after
            on_rabbitmq(bench.side("wfrunner"), node)
            args.broker = f"a private {rabbitmq.describe(node)} node (the Redis: run state)"
        findings = measure(bench)
    text = report(findings, args, started, commit(), " ".join(sys.argv[1:]))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
