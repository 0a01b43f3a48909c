"""wfrunner against plain Celery and Celery canvas, on one Redis, in one run.

Run from the repository root (``pip install -e '.[bench]'`` adds matplotlib and psutil)::

    python -m bench.compare --quick            # a ~2-minute smoke version
    python -m bench.compare                    # the full comparison
    python -m bench.compare --scaling          # -c 1, 2, 3 and two worker processes
    python -m bench.compare --stress           # the scale targets of issue 9
    python -m bench.compare --private-redis    # exact Redis command counts (own server)

Both sides get the same worker: ``--workers`` processes of a prefork pool of ``-c``.
Prints markdown tables and writes them to ``--out`` (and a PNG beside it). Not a test:
the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import infra, workflows
from bench.infra import (
    BenchError,
    Database,
    EventCounter,
    PrivateRedis,
    RssSampler,
    Workers,
    WorkerSpec,
)
from bench.measure import (
    Side,
    celery_backlog,
    celery_latency,
    wfrunner_backlog,
    wfrunner_latency,
    wfrunner_one,
)
from bench.plot import plot
from bench.stats import (
    Result,
    markdown,
    messages_table,
    number,
    percentile,
    ratio,
    ratio_table,
    results_table,
)

if TYPE_CHECKING:
    from tests.brokers import RabbitMQ

DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Scenario:
    name: str
    backlog: int  # runs sent at once (full run)
    latency: int  # runs one at a time (full run)
    quick: tuple[int, int]  # the same for --quick
    nodes: int = 0  # Celery: tasks per run (wfrunner reads nodes_executed)
    definition: dict[str, Any] = field(default_factory=dict)  # wfrunner


WFRUNNER = (
    Scenario("chain-3", 1000, 50, (300, 15), definition=workflows.chain(3)),
    Scenario("diamond", 1000, 50, (300, 15), definition=workflows.diamond()),
    Scenario("chain-40", 30, 10, (8, 5), definition=workflows.chain(40)),
    Scenario("mixed-10", 100, 30, (30, 8), definition=workflows.mixed()),
    Scenario("fan-out-200", 5, 5, (2, 2), definition=workflows.fan_out(200)),
    Scenario("loop-20", 30, 10, (8, 4), definition=workflows.loop(20)),
)
CELERY = (
    Scenario("noop", 5000, 0, (2000, 0), nodes=1),
    Scenario("chain-3", 1000, 100, (300, 30), nodes=3),
    Scenario("chord-diamond", 1000, 100, (300, 30), nodes=4),
)
#: what --scaling measures (the scenarios of the ratios that matter most)
SCALING: dict[str, tuple[str, ...]] = {
    "celery": ("noop", "chord-diamond"),
    "wfrunner": ("chain-40", "diamond"),
}


def celery_senders() -> dict[str, Callable[[], Any]]:
    from celery import chain, group

    from bench.celery_app import noop, step

    return {
        "noop": lambda: noop.apply_async(),
        "chain-3": lambda: chain(step.s(), step.s(), step.s()).apply_async(),
        "chord-diamond": lambda: (step.s() | group(step.s(), step.s()) | step.s()).apply_async(),
    }


class Bench:
    """The environment of one benchmark run; :meth:`close` leaves nothing behind."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        self.args = args
        self.private = None
        self.postgres_pid: int | None = None  # a private PostgreSQL's (its CPU is measured)
        if args.private_redis:
            self.private = PrivateRedis()
            stack.callback(self.private.close)
            wfr_url, celery_url = self.private.url(0), self.private.url(1)
        else:
            base, db = args.redis_url.rsplit("/", 1)
            wfr_url, celery_url = args.redis_url, f"{base}/{int(db) + 1}"
        self.wfr_redis = infra.claim(wfr_url)
        stack.callback(self.wfr_redis.flushdb)
        self.celery_redis = infra.claim(celery_url)
        stack.callback(self.celery_redis.flushdb)
        self.db = Database(args.pg_url)
        stack.callback(self.db.close)
        os.environ.update(
            WFRUNNER_REDIS_URL=wfr_url,
            WFRUNNER_DATABASE_URL=self.db.url,
            WFRUNNER_HANDLERS="bench.handlers",
            # the benchmark counts messages (and sees Celery's backlog end) by task events:
            # both sides send them, as bench/celery_app.py does; wfrunner's default is off
            WFRUNNER_TASK_EVENTS="1",
            BENCH_CELERY_REDIS_URL=celery_url,
        )
        self.env = {**os.environ, "PYTHONPATH": str(infra.ROOT)}
        self.rss = RssSampler()
        stack.callback(self.rss.close)
        self.stack = stack
        self.sides: dict[str, Side] = {}
        self.stress_report = ""
        self.rabbitmq: RabbitMQ | None = None  # a private node (bench.capacity --rabbitmq)

    def side(self, name: str) -> Side:
        if name not in self.sides:
            if name == "celery":
                from bench.celery_app import QUEUE, app

                queues, client, db = [QUEUE], self.celery_redis, None
            else:
                from wfrunner import app
                from wfrunner.tasks.config import COMPLETION_QUEUE, TASK_QUEUE

                queues, client, db = [TASK_QUEUE, COMPLETION_QUEUE], self.wfr_redis, self.db
            events = EventCounter(app)
            self.stack.callback(events.close)
            self.sides[name] = Side(
                name, app, client, queues, events, self.rss, db, self.args.timeout
            )
            if self.private is not None:
                self.sides[name].redis_pid = self.private.proc.pid
            self.sides[name].postgres_pid = self.postgres_pid
        return self.sides[name]

    @contextmanager
    def workers(self, name: str, count: int, concurrency: int) -> Iterator[Side]:
        if name == "celery":
            spec = WorkerSpec("bench.celery_app", "bench.plain", self.env, "bench-plain")
        else:
            spec = WorkerSpec(
                "wfrunner", "wfrunner.tasks,wfrunner.completion", self.env, "bench-wfr"
            )
        side = self.side(name)
        workers = Workers(spec, count, concurrency)
        try:
            workers.wait_ready(side.app)
            self.rss.pids = workers.pids
            yield side
        finally:
            self.rss.pids = []
            workers.stop()

    def sizes(self, scenario: Scenario) -> tuple[int, int]:
        backlog, latency = (
            scenario.quick if self.args.quick else (scenario.backlog, scenario.latency)
        )
        scale = self.args.scale
        return max(1, round(backlog * scale)), round(latency * scale)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_celery(
    bench: Bench, names: tuple[str, ...], workers: int, c: int, note: str
) -> list[Result]:
    results = []
    senders = celery_senders()
    with bench.workers("celery", workers, c) as side:
        for scenario in CELERY:
            if scenario.name not in names:
                continue
            backlog, latency = bench.sizes(scenario)
            progress(f"celery {scenario.name}: {latency} one at a time, a backlog of {backlog}")
            result = Result("celery", scenario.name, runs=backlog, nodes_per_run=scenario.nodes)
            result.note = note
            send = senders[scenario.name]
            if latency:
                celery_latency(side, result, send, latency)
            celery_backlog(side, result, send)
            results.append(result)
    return results


def run_wfrunner(
    bench: Bench, names: tuple[str, ...], workers: int, c: int, note: str
) -> list[Result]:
    import wfrunner

    results = []
    with bench.workers("wfrunner", workers, c) as side:
        for scenario in WFRUNNER:
            if scenario.name not in names:
                continue
            backlog, latency = bench.sizes(scenario)
            progress(f"wfrunner {scenario.name}: {latency} one at a time, a backlog of {backlog}")
            workflow_id = wfrunner.register_workflow(scenario.definition)
            result = Result("wfrunner", scenario.name, runs=backlog, note=note)
            wfrunner_latency(side, result, workflow_id, latency)
            wfrunner_backlog(side, result, workflow_id)
            results.append(result)
        if bench.args.stress:
            from bench.stress import stress

            bench.stress_report = stress(bench, side)
    return results


#: (wfrunner scenario, Celery scenario) timed one run at a time in alternation
PAIRS = (("chain-3", "chain-3"), ("diamond", "chord-diamond"))


@dataclass
class Paired:
    """One run at a time of each side in turn, both workers up: the machine's slow minutes
    fall on both sides alike (seconds per run)."""

    wfrunner: str
    celery: str
    ours: list[float]
    theirs: list[float]


@dataclass(frozen=True)
class InTurn:
    """One (wfrunner scenario, Celery scenario) pair of :data:`PAIRS`, both workers up."""

    ours: Side
    theirs: Side
    wfrunner: str
    celery: str
    scenario: Scenario
    workflow_id: str


def in_turn(bench: Bench, names: tuple[str, ...], c: int) -> Iterator[InTurn]:
    """Start one worker of each side and yield each selected pair, its workflow
    registered; the workers stop once the pairs are consumed."""
    import wfrunner

    with bench.workers("celery", 1, c) as theirs, bench.workers("wfrunner", 1, c) as ours:
        for ours_name, theirs_name in PAIRS:
            if ours_name not in names:
                continue
            scenario = next(s for s in WFRUNNER if s.name == ours_name)
            workflow_id = wfrunner.register_workflow(scenario.definition)
            yield InTurn(ours, theirs, ours_name, theirs_name, scenario, workflow_id)


def run_paired(bench: Bench, names: tuple[str, ...], c: int) -> list[Paired]:
    count = bench.args.paired
    senders = celery_senders()
    found: list[Paired] = []
    for p in in_turn(bench, names, c):
        progress(f"{p.wfrunner} and Celery {p.celery}: {count} each, in turn")
        send = senders[p.celery]
        pair = Paired(p.wfrunner, p.celery, [], [])
        for i in range(count + 5):  # the first five warm both sides up
            started = time.perf_counter()
            send().get(timeout=p.theirs.timeout)
            took = time.perf_counter() - started
            seconds, doc = wfrunner_one(p.ours, p.workflow_id)
            if doc["status"] != "COMPLETED":
                raise BenchError(f"wfrunner {p.wfrunner}: a run ended {doc['status']}")
            if i >= 5:
                pair.theirs.append(took)
                pair.ours.append(seconds)
        found.append(pair)
    return found


@dataclass
class Round:
    """One backlog of each side in turn, both workers up, the same number of runs each
    (runs/s): the per-round ratio is the machine's speed of those minutes taken out."""

    wfrunner: str
    celery: str
    runs: int
    ours: float
    theirs: float


def run_rounds(bench: Bench, names: tuple[str, ...], c: int) -> list[Round]:
    senders = celery_senders()
    found: list[Round] = []
    for p in in_turn(bench, names, c):
        nodes = next(s for s in CELERY if s.name == p.celery).nodes
        backlog, _ = bench.sizes(p.scenario)
        progress(f"{p.wfrunner} and Celery {p.celery}: {bench.args.rounds} backlogs of "
                 f"{backlog} each, in turn")  # fmt: skip
        for i in range(bench.args.rounds):
            mine = Result("wfrunner", p.wfrunner, runs=backlog)
            other = Result("celery", p.celery, runs=backlog, nodes_per_run=nodes)
            send = senders[p.celery]
            phases = [
                lambda r=other, s=send, p=p: celery_backlog(p.theirs, r, s),
                lambda r=mine, p=p: wfrunner_backlog(p.ours, r, p.workflow_id),
            ]
            for phase in phases if i % 2 == 0 else phases[::-1]:  # who goes first alternates
                phase()
            if mine.failed:
                raise BenchError(f"wfrunner {p.wfrunner}: {mine.failed} runs did not complete")
            rates = (mine.runs_per_second, other.runs_per_second)
            found.append(Round(p.wfrunner, p.celery, backlog, *rates))
    return found


def rounds_table(rounds: list[Round]) -> str:
    rows = []
    for pair in dict.fromkeys((r.wfrunner, r.celery) for r in rounds):
        mine = [r for r in rounds if (r.wfrunner, r.celery) == pair]
        ratios = [ratio(r.ours, r.theirs) for r in mine]
        for i, (r, x) in enumerate(zip(mine, ratios, strict=True), 1):
            rows.append([f"wfrunner {r.wfrunner} vs Celery {r.celery}", str(i), str(r.runs),
                         number(r.ours), number(r.theirs), f"{number(x, 2)}x"])  # fmt: skip
        rows.append([f"wfrunner {pair[0]} vs Celery {pair[1]}", "median", "", "", "",
                     f"{number(percentile(ratios, 50), 2)}x"])  # fmt: skip
    header = ["pair", "round", "runs each", "wfrunner runs/s", "Celery runs/s", "ratio"]
    return markdown(header, rows)


def paired_table(pairs: list[Paired]) -> str:
    rows = []
    for p in pairs:
        ours = [percentile(p.ours, q) * 1000 for q in (50, 95)]
        theirs = [percentile(p.theirs, q) * 1000 for q in (50, 95)]
        rows.append(
            [
                f"wfrunner {p.wfrunner} vs Celery {p.celery}",
                str(len(p.ours)),
                *(number(v) for v in ours),
                *(number(v) for v in theirs),
                f"{number(ratio(ours[0], theirs[0]), 2)}x",
                f"{number(ratio(ours[1], theirs[1]), 2)}x",
            ]
        )
    header = ["pair", "runs each", "wfrunner p50 ms", "wfrunner p95 ms", "Celery p50 ms",
              "Celery p95 ms", "p50 ratio", "p95 ratio"]  # fmt: skip
    return markdown(header, rows)


def scaling_table(results: list[Result], configs: list[tuple[int, int]]) -> str:
    def find(side: str, name: str, note: str) -> Result | None:
        return next((r for r in results if (r.side, r.name, r.note) == (side, name, note)), None)

    rows = []
    for count, c in configs:
        note = f"{count}x-c{c}"
        noop, chord = find("celery", "noop", note), find("celery", "chord-diamond", note)
        chain40, diamond = find("wfrunner", "chain-40", note), find("wfrunner", "diamond", note)
        figures = [
            noop.nodes_per_second if noop else float("nan"),
            chain40.nodes_per_second if chain40 else float("nan"),
            chord.runs_per_second if chord else float("nan"),
            diamond.runs_per_second if diamond else float("nan"),
        ]
        rows.append(
            [f"{count} worker(s) x -c {c}"]
            + [number(f) for f in figures]
            + [
                f"{number(ratio(figures[1], figures[0]), 2)}x",
                f"{number(ratio(figures[3], figures[2]), 2)}x",
            ]
        )
    header = ["config", "no-op tasks/s", "chain-40 nodes/s", "chord runs/s", "diamond runs/s",
              "chain-40 / no-op", "diamond / chord"]  # fmt: skip
    return markdown(header, rows)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="small backlogs: a ~2-minute smoke run"
    )
    parser.add_argument("--scaling", action="store_true", help="-c 1,2,3 and two worker processes")
    parser.add_argument("--stress", action="store_true", help="issue 9's scale targets")
    parser.add_argument("-c", "--concurrency", type=int, default=2, help="prefork pool size (2)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per side (1)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run count")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument(
        "--paired",
        type=int,
        default=100,
        help="runs each of chain-3 and diamond timed in alternation with Celery's (0: none)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="backlogs of chain-3 and diamond, each in turn with Celery's, both workers up",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/3",
        help="wfrunner's database; Celery's is the next one (3 and 4)",
    )
    parser.add_argument(
        "--private-redis",
        action="store_true",
        help="start a redis-server of its own: exact command counts",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="server on which a database is made")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a phase may take")
    parser.add_argument("--out", type=Path, default=infra.ROOT / "bench" / "results" / "latest.md")
    return parser.parse_args(argv)  # fmt: skip


def selected(args: argparse.Namespace, side: str, names: tuple[str, ...]) -> tuple[str, ...]:
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    return tuple(n for n in names if not wanted or n in wanted)


def measure(
    bench: Bench,
) -> tuple[list[Result], list[tuple[int, int]], list[Paired], list[Round]]:
    args = bench.args
    if args.scaling:
        configs = [(1, 1), (1, 2), (1, 3), (2, args.concurrency)]
        names = SCALING
    else:
        configs = [(args.workers, args.concurrency)]
        names = {
            "celery": tuple(s.name for s in CELERY),
            "wfrunner": tuple(s.name for s in WFRUNNER),
        }
    results: list[Result] = []
    for count, c in configs:
        note = f"{count}x-c{c}" if args.scaling else ""
        results += run_celery(bench, selected(args, "celery", names["celery"]), count, c, note)
        results += run_wfrunner(
            bench, selected(args, "wfrunner", names["wfrunner"]), count, c, note
        )
    pairs = []
    if args.paired and not args.scaling:
        pairs = run_paired(bench, selected(args, "wfrunner", names["wfrunner"]), args.concurrency)
    rounds = []
    if args.rounds and not args.scaling:
        rounds = run_rounds(bench, selected(args, "wfrunner", names["wfrunner"]), args.concurrency)
    return results, configs, pairs, rounds


def report(
    bench: Bench,
    results: list[Result],
    configs: list[tuple[int, int]],
    pairs: list[Paired],
    rounds: list[Round],
) -> str:
    args = bench.args
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    redis_note = (
        "a private redis-server (exact)"
        if args.private_redis
        else f"{args.redis_url} on the shared server: INFO commandstats is server-wide, so "
        "other clients' commands are counted too (use --private-redis for exact counts)"
    )
    lines = [
        f"# wfrunner vs Celery ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"`python -m bench.compare {' '.join(sys.argv[1:])}` on {platform.node()}, "
        f"{os.cpu_count()} CPUs, load average {load} at the end; "
        f"{args.workers} worker process(es) per side, prefork -c {args.concurrency}"
        + (" (scaling: see below)" if args.scaling else "")
        + f". Redis: {redis_note}.",
        "",
        results_table(results),
        "",
    ]
    if args.scaling:
        lines += ["## Scaling", "", scaling_table(results, configs), ""]
    else:
        lines += ["## Ratios (wfrunner / Celery)", "", ratio_table(results), ""]
    if pairs:
        lines += [
            "## One run at a time, in turn",
            "",
            "Each side's run after the other's, both workers up, so a slow minute of the "
            "machine weighs on both alike (the p50/p95 above time each side in its own "
            "minutes):",
            "",
            paired_table(pairs),
            "",
        ]
    if rounds:
        lines += [
            "## Backlogs in turn",
            "",
            "Each side's backlog after the other's (who goes first alternates), both workers "
            "up and the same number of runs each: the ratio of each round is free of the "
            "machine's speed in those minutes, which the table above is not.",
            "",
            rounds_table(rounds),
            "",
        ]
    lines += ["## Task messages per run, by task", "", messages_table(results), ""]
    if bench.stress_report:
        lines += ["## Stress", "", bench.stress_report, ""]
    lines += [HOW_TO_READ]
    return "\n".join(lines)


HOW_TO_READ = """How to read it: nodes/s and runs/s are for a backlog of `runs` sent at once,
from the first send to the last end each side recorded; p50/p95 are one run at a time (send to
result in the caller's hands) and, "(load)", each backlog run's end minus its send.
Per run: Redis commands (INFO commandstats delta, the benchmark's own look-ups taken out),
task messages (`task-received` events: messages the workers took off the queues), PostgreSQL
transactions (pg_stat_database.xact_commit of the bench database, idle worker connections
closed first so their counts are published; the benchmark's own polls taken out) and the
peak RSS of the worker process trees; CPU ms per run of the backlog, by process kind (user +
system: the workers' main processes and pools, the private Redis server, every PostgreSQL
process). A ratio above 1 means more: faster for rates, slower
or costlier for latencies and counts (the last column says which side is better)."""


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with ExitStack() as stack:
        bench = Bench(args, stack)
        results, configs, pairs, rounds = measure(bench)
        text = report(bench, results, configs, pairs, rounds)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"\nwritten: {args.out}", file=sys.stderr)
    print(plot(results, args.out.with_suffix(".png")), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
