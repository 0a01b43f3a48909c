"""1. Worker-kill chaos: whole ``celery worker`` process groups SIGKILLed every few
seconds while runs of a 20-node DAG (fan-out, joins, an exclusive branch) are in flight,
and restarted. Their unacknowledged tasks come back after WFRUNNER_VISIBILITY_TIMEOUT;
tokens committed but not published are republished by the reconciler (beat)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from tests.fault.checks import CounterSampler, assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.workflows import chaos_dag


def run_chaos(
    cluster: Cluster, runs: int, kills: int, every: float, workers: int, timeout: float
) -> None:
    workflow_id = cluster.register(chaos_dag())
    cluster.start_workers(workers)
    cluster.start_beat()
    began = time.monotonic()
    with CounterSampler(cluster.redis_server.url) as sampler:
        run_ids = [
            cluster.submit(workflow_id, {"tag": uuid.uuid4().hex, "score": (i * 37) % 100})
            for i in range(runs)
        ]
        for k in range(kills):
            time.sleep(every)
            victim = cluster.workers[k % workers]
            victim.kill()
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
    )
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": runs}, report


def test_worker_kill_chaos_quick(make_cluster: Callable[..., Cluster]) -> None:
    run_chaos(make_cluster(), runs=30, kills=2, every=3.0, workers=2, timeout=90)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_worker_kill_chaos_long(make_cluster: Callable[..., Cluster]) -> None:
    run_chaos(make_cluster(), runs=120, kills=12, every=4.0, workers=3, timeout=300)
