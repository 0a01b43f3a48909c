"""``--stress``: the scale targets of issue 9, against the wfrunner worker of the run.

A 1,000-wide fan-out whose join must run exactly once, a 20,000-node chain (the compiler's
``MAX_NODES``), and 10,000 runs sent at once, after which Redis must hold no key of them.
Each target is reported as a line of figures and a verdict; none raises, so one that fails
does not hide the others.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import workflows
from bench.infra import BenchError
from bench.measure import Side, wfrunner_one
from bench.plot import plot_series
from bench.stats import number

#: the targets, by the names --only accepts
TARGETS = ("fan-out-1000", "chain-20000", "runs-10000")


def fan_out(side: Side, width: int) -> str:
    import wfrunner
    from wfrunner.runtime import runtime

    workflow_id = wfrunner.register_workflow(workflows.fan_out(width))
    seconds, doc = wfrunner_one(side, workflow_id)
    join = doc["nodes"]["join"]
    events = runtime().store.list_events(doc["run_id"])
    completed = sum(1 for e in events if e.type == "node_completed" and e.node_id == "join")
    once = doc["status"] == "COMPLETED" and completed == 1 and join["iterations"] == 1
    return (
        f"- {width:,}-wide fan-out + join: {doc['status']} in {seconds:.1f} s "
        f"({number(doc['stats']['nodes_executed'] / seconds)} nodes/s); join: "
        f"{completed} node_completed event(s), iterations {join['iterations']}, "
        f"attempts {join['attempts']}: **{'ran exactly once' if once else 'NOT exactly once'}**"
    )


def long_chain(side: Side, length: int) -> str:
    import wfrunner

    try:
        workflow_id = wfrunner.register_workflow(workflows.chain(length))
    except wfrunner.WfrunnerError as exc:
        return f"- {length:,}-node chain: **refused**: {str(exc)[:300]}"
    started = time.perf_counter()
    seconds, doc = wfrunner_one(side, workflow_id)
    return (
        f"- {length:,}-node chain: **{doc['status']}** in {seconds:.1f} s "
        f"({number(doc['stats']['nodes_executed'] / seconds)} nodes/s; "
        f"{time.perf_counter() - started:.1f} s with the run document)"
    )


def run_keys(side: Side, run_ids: set[str]) -> tuple[int, int]:
    """(``wfr:{run}:*`` keys of these runs, ``celery-task-meta-<run>`` keys of them)."""
    hot = sum(
        1
        for key in side.redis.scan_iter("wfr:{*", count=1000)
        if key.split("{", 1)[1].split("}", 1)[0] in run_ids
    )
    metas = sum(
        1
        for key in side.redis.scan_iter("celery-task-meta-*", count=1000)
        if key.removeprefix("celery-task-meta-") in run_ids
    )
    return hot, metas


def flat(series: list[tuple[float, int]]) -> str:
    """The median RSS of the last tenth of the samples against the first tenth."""
    if len(series) < 20:
        return "too few samples"
    tenth = len(series) // 10
    first = statistics.median(b for _, b in series[:tenth]) / 2**20
    last = statistics.median(b for _, b in series[-tenth:]) / 2**20
    peak = max(b for _, b in series) / 2**20
    change = f"{last - first:+.0f} MB"
    return f"first tenth {first:.0f} MB, last tenth {last:.0f} MB ({change}), peak {peak:.0f} MB"


def wait_all(side: Side, run_ids: list[str], started: float) -> list[tuple[float, int]]:
    """Polls once a second until every run ended or the phase timeout passed; returns
    (seconds, runs ended) once a minute, to show whether the pace holds."""
    assert side.db is not None
    deadline = time.monotonic() + side.timeout
    progress: list[tuple[float, int]] = []
    done = 0
    while done < len(run_ids) and time.monotonic() < deadline:
        time.sleep(1)
        done = side.db.scalar(
            "SELECT count(*) FROM runs WHERE id = ANY(:ids) AND completed_at IS NOT NULL",
            ids=run_ids,
        )
        if not progress or time.time() - started - progress[-1][0] >= 60:
            progress.append((time.time() - started, done))
            print(f"  {done:,} of {len(run_ids):,} runs ended", flush=True)
    progress.append((time.time() - started, done))
    return progress


def many_runs(bench: Any, side: Side, count: int) -> str:
    import wfrunner
    from wfrunner import start_run

    assert side.db is not None
    workflow_id = wfrunner.register_workflow(workflows.chain(3))
    side.settle()
    baseline = side.redis.info("memory")["used_memory"]
    since = side.rss.mark()
    started = time.time()
    run_ids = [start_run.delay(workflow_id, {"x": 1}).id for _ in range(count)]
    sent = time.time() - started
    progress = wait_all(side, run_ids, started)
    pace = ", ".join(f"{done:,} at {t:.0f} s" for t, done in progress)
    statuses = side.db.rows(
        "SELECT status, count(*), min(error) FROM runs WHERE id = ANY(:ids) GROUP BY status",
        ids=run_ids,
    )
    completed = ", ".join(f"{n:,} {status}" for status, n, _ in statuses)
    errors = "; ".join(f"{status}: {error}" for status, _, error in statuses if error)
    if errors:
        completed += f" (**{errors[:300]}**)"
    series = [(t - since, b) for t, b in side.rss.series if t >= since]
    picture = plot_series(series, bench.args.out.with_name("stress-rss.png"), f"{count:,} runs")
    head = (
        f"- {count:,} runs (chain-3) sent at once in {sent:.1f} s: {completed}\n"
        f"  - runs ended: {pace}\n"
        f"  - worker RSS over the run: {flat(series)} ({picture})\n"
    )
    if progress[-1][1] < count:
        return head + f"  - **not all ended within --timeout {side.timeout:.0f} s**"
    ended = side.db.scalar(
        "SELECT extract(epoch FROM max(completed_at)) FROM runs WHERE id = ANY(:ids)", ids=run_ids
    )
    side.settle()
    hot, metas = run_keys(side, set(run_ids))
    memory = side.redis.info("memory")["used_memory"]
    return head + (
        f"  - all ended after {float(ended) - started:.1f} s "
        f"({number(count / (float(ended) - started))} runs/s)\n"
        f"  - Redis afterwards: **{hot} `wfr:{{run}}` keys** of those runs; {metas:,} "
        f"`celery-task-meta-<run>` keys (start_run's result, kept 24 h as documented); "
        f"used_memory {baseline / 2**20:.1f} MB before, {memory / 2**20:.1f} MB after "
        f"({(memory - baseline) / count:.0f} bytes per run, the result keys included)"
    )


def stress(bench: Any, side: Side) -> str:
    scale = bench.args.scale
    lines = []

    def scaled(n: int) -> int:  # --scale below 1 shrinks the targets for a smoke run
        return max(2, round(n * min(scale, 1)))

    wanted = {n.strip() for n in bench.args.only.split(",")} & set(TARGETS)
    targets = {
        "fan-out-1000": lambda: fan_out(side, scaled(1000)),
        "chain-20000": lambda: long_chain(side, scaled(20_000)),
        "runs-10000": lambda: many_runs(bench, side, scaled(10_000)),
    }
    for name, target in targets.items():
        if wanted and name not in wanted:
            continue
        try:
            lines.append(target())
        except (BenchError, TimeoutError) as exc:
            lines.append(f"- **failed**: {exc}")
        print(lines[-1], flush=True)
    return "\n".join(lines)
