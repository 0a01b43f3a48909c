"""1. Worker-kill chaos: whole ``celery worker`` process groups SIGKILLed every few
seconds while runs of a 20-node DAG (fan-out, joins, an exclusive branch) are in flight,
and restarted. Their unacknowledged tasks come back after WFRUNNER_VISIBILITY_TIMEOUT;
tokens committed but not published are republished by the reconciler (beat)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import pytest

from tests.fault.checks import CounterSampler, assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.procs import CeleryProcess
from tests.fault.workflows import chaos_dag


def run_chaos(
    cluster: Cluster,
    runs: int,
    kills: int,
    every: float,
    workers: int,
    timeout: float,
    top_up: int = 0,
) -> None:
    """``top_up``: runs submitted again before each kill, so the last kills still find
    nodes in flight however fast the workers drain the first ones."""
    workflow_id = cluster.register(chaos_dag())
    cluster.start_workers(workers)
    cluster.start_beat()
    began = time.monotonic()
    with CounterSampler(cluster.redis_server.url) as sampler:
        run_ids: list[str] = []

        def submit(count: int) -> None:
            for _ in range(count):
                score = (len(run_ids) * 37) % 100
                run_ids.append(
                    cluster.submit(workflow_id, {"tag": uuid.uuid4().hex, "score": score})
                )

        submit(runs)
        hit = 0
        #: where each worker's current incarnation begins in its (appended) log
        since = {w.name: 0 for w in cluster.workers}
        for k in range(kills):
            time.sleep(every)
            submit(top_up)
            victim = cluster.workers[k % workers]
            hit += bool(wait_for_work_in_flight(victim, since[victim.name]))
            victim.kill()
            since[victim.name] = victim.log.stat().st_size
            victim.start(wait_ready=False)
        stuck = cluster.wait(run_ids, timeout)
    report = check_runs(
        cluster.rt,
        cluster.redis,
        run_ids,
        cluster.logs(),
        sampler,
        kills=kills,
        seconds=round(time.monotonic() - began, 1),
        ignored_deliveries=cluster.count_in_logs("ignored:"),
        kills_with_work_in_flight=hit,
    )
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": len(run_ids)}, report
    # every kill took a node's delivery down mid-flight (received, not finished), and its
    # work was done again: more node_started than node_completed events
    assert hit == kills, report
    assert report.duplicates >= 1, report


#: a node's task in the worker log, by the name it is shown under (wfrunner.node:<wf>.<node>)
_TASK = re.compile(r"Task wfrunner\.node:\S+?\[([0-9a-f-]+)\] (received|succeeded|raised|retry)")


def in_flight(victim: CeleryProcess, since: int, tasks: re.Pattern[str] = _TASK) -> set[str]:
    """Tasks (execute_node unless ``tasks`` says otherwise) the worker received (since its
    log offset) and has not finished."""
    with victim.log.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    received: set[str] = set()
    for task_id, what in tasks.findall(text):
        if what == "received":
            received.add(task_id)
        else:
            received.discard(task_id)
    return received


def wait_for_work_in_flight(victim: CeleryProcess, since: int, limit: float = 10.0) -> set[str]:
    """Wait (at most ``limit`` s) until the victim is in the middle of a node."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy = in_flight(victim, since)
        if busy:
            return busy
        time.sleep(0.02)
    return set()


def test_worker_kill_chaos_quick(make_cluster: Callable[..., Cluster]) -> None:
    run_chaos(make_cluster(), runs=30, kills=2, every=3.0, workers=2, timeout=90)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_worker_kill_chaos_long(make_cluster: Callable[..., Cluster]) -> None:
    # runs are topped up before every kill, so the twelfth still finds nodes in flight:
    # a fixed 360 runs drained before it once a run's end took fewer round trips
    run_chaos(make_cluster(), runs=120, kills=12, every=4.0, workers=3, timeout=600, top_up=30)
