"""9. Redis comes back from a snapshot a few seconds old.

Long chains and short diamonds run on real workers and beat against a ``redis-server``
that writes an RDB snapshot (BGSAVE) mid-run, or keeps an AOF fsynced every second. A few
seconds later it is SIGKILLed and started again from its own files, as Redis does after a
crash: the hot state, the broker's queues and the reconciler's server key go back in time,
while PostgreSQL has moved on (flushes, runs that ended). Every run must end exactly once
and consistently.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.procs import RedisServer
from tests.fault.workflows import diamond, edge, node
from wfrunner.states import TERMINAL_RUN_STATES


@pytest.fixture(scope="module", params=["rdb", "aof"])
def fault_redis(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """This module's ``redis-server``: it persists, so a restart brings data back."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=request.param == "aof")
    server.start()
    yield server
    server.kill()


def _frozen(cluster: Cluster, run_id: str) -> tuple[Any, ...]:
    """What PostgreSQL says about an ended run: it must never change again."""
    run = cluster.rt.store.get_run(run_id)
    events = [(e.seq, e.type, e.node_id, e.data) for e in cluster.rt.store.list_events(run_id)]
    rows = sorted(
        (e.node_id, e.iteration, e.attempt, e.status.value, repr(e.output))
        for e in cluster.rt.store.list_node_executions(run_id)
    )
    return run.status, run.completed_at, events, rows


def _first_log(cluster: Cluster, text: str, since: datetime) -> float | None:
    """Seconds from ``since`` to the first worker log line with ``text`` (Celery's local
    timestamps), None when there is none."""
    stamps = [
        datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
        for log in cluster.logs()
        for line in log.splitlines()
        if text in line and line.startswith("[")
    ]
    after = [(t - since).total_seconds() for t in stamps if t >= since]
    return round(min(after), 1) if after else None


def _wait(cluster: Cluster, run_ids: list[str], ready: Callable[[list[str]], bool]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ready([cluster.status(r) for r in run_ids]):
            return
        time.sleep(0.1)
    raise AssertionError(f"runs did not get there\n{cluster.tails()}")


def long_chain(length: int = 80) -> dict[str, Any]:
    """``length`` nodes in a row (30-80 ms each): runs that are still going at the restart."""
    ids = [f"c{i}" for i in range(length)]
    return {
        "metadata": {"name": "fault_long_chain"},
        "nodes": [node(i, ms=[30, 80]) for i in ids],
        "edges": [edge(a, b) for a, b in itertools.pairwise(ids)],
    }


def test_redis_restarted_from_an_older_snapshot(
    make_cluster: Callable[..., Cluster], fault_redis: RedisServer
) -> None:
    """Long runs are in flight and short ones end between the snapshot and the crash (the
    snapshot holds them running); more runs start after the snapshot (it knows nothing of
    them). After the restart every run completes once, consistently, and what PostgreSQL
    recorded of the runs that had ended stays exactly as it was."""
    cluster = make_cluster()
    long_id = cluster.register(long_chain())
    short_id = cluster.register(diamond(ms=(200, 400)))
    cluster.start_workers(2)
    cluster.start_beat()

    def submit(workflow_id: str, n: int) -> list[str]:
        return [cluster.submit(workflow_id, {"tag": uuid.uuid4().hex}) for _ in range(n)]

    long = submit(long_id, 6)
    short = submit(short_id, 4)
    _wait(cluster, long + short, lambda s: all(x == "RUNNING" for x in s))
    if not fault_redis.appendonly:
        fault_redis.snapshot()  # Redis will come back to this moment
    late = submit(short_id, 2)  # started after the snapshot: unknown to it
    _wait(cluster, short + late, lambda s: all(x == "COMPLETED" for x in s))
    run_ids = long + short + late
    ended = {r: _frozen(cluster, r) for r in run_ids
             if cluster.rt.store.get_run(r).status in TERMINAL_RUN_STATES}  # fmt: skip
    running = [r for r in run_ids if r not in ended]
    fault_redis.restart()
    lost_at, restarted_at = time.monotonic(), datetime.now()
    stuck = cluster.wait(run_ids, 120)
    detected = _first_log(cluster, "is new to the reconciler", restarted_at)
    report = check_runs(cluster.rt, cluster.redis, run_ids, cluster.logs(),
                        mode="aof" if fault_redis.appendonly else "rdb",
                        ended_before_restart=len(ended), running_at_restart=len(running),
                        rebuilt=cluster.count_in_logs("rebuilt from PostgreSQL"),
                        refused=cluster.count_in_logs("stale hot state refused"),
                        not_pending=cluster.count_in_logs("token is not pending"),
                        dropped=cluster.count_in_logs("stale hot keys dropped")
                        + cluster.count_in_logs("dropping the hot state left in Redis"),
                        detected_after=detected,
                        seconds_after_restart=round(time.monotonic() - lost_at, 1))  # fmt: skip
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": len(run_ids)}, report
    assert ended and running, report  # the restart hit ended and running runs
    changed = [r for r, before in ended.items() if _frozen(cluster, r) != before]
    assert changed == [], f"ended runs changed after the restart: {changed}\n{report}"
    assert cluster.count_in_logs("is new to the reconciler") >= 1, report
