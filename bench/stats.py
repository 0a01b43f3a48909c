"""Percentiles, ratios and the markdown tables of ``bench.compare``: no I/O, unit-tested."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between the two nearest ranks.

    NaN for no values, so a scenario that produced none shows as "-" rather than failing.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(ours: float, theirs: float) -> float:
    """ours / theirs, NaN when either is missing or theirs is 0 (no division error)."""
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return math.nan
    return ours / theirs


def number(value: float | None, digits: int = 1) -> str:
    """A table cell: thousands separators, ``-`` for a missing figure."""
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


@dataclass
class Result:
    """One scenario's figures; NaN where the side has no such figure (plain no-op tasks
    have no latency; Celery runs write nothing to PostgreSQL)."""

    side: str  # "celery" or "wfrunner"
    name: str
    runs: int = 0  # runs in the backlog (throughput) phase
    nodes_per_run: float = math.nan
    elapsed: float = math.nan  # seconds for the whole backlog
    latency: list[float] = field(default_factory=list)  # one at a time, seconds
    load_latency: list[float] = field(default_factory=list)  # in the backlog, seconds
    redis_commands: float = math.nan  # per run
    messages: float = math.nan  # task messages per run
    message_kinds: dict[str, float] = field(default_factory=dict)  # task name -> per run
    pg_transactions: float = math.nan  # per run
    rss_mb: float = math.nan  # peak of the worker process trees
    #: CPU ms per run: "workers" (main processes and pools), "redis", "postgres"
    cpu_ms: dict[str, float] = field(default_factory=dict)
    failed: int = 0  # runs that did not complete
    note: str = ""

    @property
    def runs_per_second(self) -> float:
        return ratio(self.runs, self.elapsed)

    @property
    def nodes_per_second(self) -> float:
        return self.runs_per_second * self.nodes_per_run

    def p(self, q: float, under_load: bool = False) -> float:
        """Latency percentile in milliseconds."""
        return percentile(self.load_latency if under_load else self.latency, q) * 1000


COLUMNS = (
    "side",
    "scenario",
    "runs",
    "nodes/run",
    "nodes/s",
    "runs/s",
    "p50 ms",
    "p95 ms",
    "p50 ms (load)",
    "p95 ms (load)",
    "Redis cmds/run",
    "msgs/run",
    "PG xacts/run",
    "peak RSS MB",
    "CPU ms/run: workers / Redis / PG",
    "failed",
)


def row(r: Result) -> list[str]:
    return [
        r.side,
        r.name + (f" ({r.note})" if r.note else ""),
        str(r.runs),
        number(r.nodes_per_run),
        number(r.nodes_per_second),
        number(r.runs_per_second),
        number(r.p(50)),
        number(r.p(95)),
        number(r.p(50, True)),
        number(r.p(95, True)),
        number(r.redis_commands),
        number(r.messages),
        number(r.pg_transactions),
        number(r.rss_mb),
        cpu_split(r),
        str(r.failed),
    ]


def cpu_split(r: Result) -> str:
    """The CPU a run cost, by process kind (PostgreSQL only for wfrunner: Celery's runs
    touch it not)."""
    if not r.cpu_ms:
        return "-"
    kinds = ["workers", "redis"] + (["postgres"] if r.side == "wfrunner" else [])
    return " / ".join(number(r.cpu_ms.get(k, math.nan), 1) for k in kinds)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def results_table(results: Sequence[Result]) -> str:
    return markdown(COLUMNS, [row(r) for r in results])


def messages_table(results: Sequence[Result]) -> str:
    """Task messages per run by task name: where each side's messages go."""
    names = sorted({n for r in results for n in r.message_kinds})
    rows = [
        [r.side, r.name + (f" ({r.note})" if r.note else "")]
        + [number(r.message_kinds.get(n, math.nan), 2) for n in names]
        for r in results
        if r.message_kinds
    ]
    return markdown(["side", "scenario", *names], rows)


@dataclass(frozen=True)
class Comparison:
    """One wfrunner figure next to its Celery counterpart."""

    label: str
    ours: str  # "scenario:metric" on the wfrunner side
    theirs: str  # "scenario:metric" on the Celery side
    higher_is_better: bool


#: what each ratio compares (metric names are the properties of :func:`metric`)
COMPARISONS = (
    Comparison("chain-40 nodes/s vs plain no-op tasks/s", "chain-40:nodes/s", "noop:nodes/s", True),
    Comparison("chain-3 runs/s vs Celery chain-3 runs/s", "chain-3:runs/s", "chain-3:runs/s", True),
    Comparison("chain-3 p50 vs Celery chain-3 .get() p50", "chain-3:p50", "chain-3:p50", False),
    Comparison("diamond runs/s vs chord runs/s", "diamond:runs/s", "chord-diamond:runs/s", True),
    Comparison("diamond p50 vs chord .get() p50", "diamond:p50", "chord-diamond:p50", False),
    Comparison("diamond p95 vs chord .get() p95", "diamond:p95", "chord-diamond:p95", False),
    Comparison(
        "diamond Redis cmds/run vs chord",
        "diamond:redis",
        "chord-diamond:redis",
        False,
    ),
    Comparison("diamond msgs/run vs chord", "diamond:msgs", "chord-diamond:msgs", False),
)


def metric(r: Result, name: str) -> float:
    getters = {
        "nodes/s": lambda: r.nodes_per_second,
        "runs/s": lambda: r.runs_per_second,
        "p50": lambda: r.p(50),
        "p95": lambda: r.p(95),
        "redis": lambda: r.redis_commands,
        "msgs": lambda: r.messages,
    }
    return getters[name]()


def lookup(results: Sequence[Result], side: str, ref: str) -> float:
    scenario, name = ref.split(":")
    for r in results:
        if r.side == side and r.name == scenario:
            return metric(r, name)
    return math.nan


def ratio_table(results: Sequence[Result]) -> str:
    """Each wfrunner figure over its Celery counterpart. Above 1 is faster for rates and
    slower (or costlier) for latencies and counts: the last column says which is better."""
    rows = []
    for c in COMPARISONS:
        ours = lookup(results, "wfrunner", c.ours)
        theirs = lookup(results, "celery", c.theirs)
        share = ratio(ours, theirs)
        verdict = "-"
        if not math.isnan(share):
            better = share >= 1 if c.higher_is_better else share <= 1
            verdict = "wfrunner" if better else "Celery"
        rows.append([c.label, number(ours), number(theirs), f"{number(share, 2)}x", verdict])
    return markdown(["comparison", "wfrunner", "Celery", "ratio", "better"], rows)
