"""5. Ambiguous Redis writes, 6. Redis lost mid-run, 8. a lost publish: the Redis side.

5 and 8 put a :class:`~tests.fault.proxy.RedisProxy` between the workers and Redis.
6 SIGKILLs the dedicated ``redis-server`` (no persistence) and starts it again empty on
the same port while runs are in flight."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable

from tests.fault.checks import CounterSampler, assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.proxy import RedisProxy
from tests.fault.workflows import chain, chaos_dag, diamond, node
from wfrunner.resources import lua_source

COMMIT_SHA = hashlib.sha1(lua_source("commit_node").encode()).hexdigest().encode()


def _ambiguous(cluster: Cluster, proxy: RedisProxy, runs: int, timeout: float) -> None:
    workflow_id = cluster.register(diamond())
    cluster.start_workers(2)
    with CounterSampler(cluster.redis_server.url) as sampler:
        run_ids = [cluster.submit(workflow_id, {"tag": uuid.uuid4().hex}) for _ in range(runs)]
        stuck = cluster.wait(run_ids, timeout)
    report = check_runs(cluster.rt, cluster.redis, run_ids, cluster.logs(), sampler,
                        lost_replies=proxy.drops,
                        task_retries=cluster.count_in_logs("Retry in"),
                        republished=cluster.count_in_logs("stalled tokens again"))  # fmt: skip
    assert proxy.drops >= 2, report  # the fault did happen
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": runs}


def test_ambiguous_commit_reply_lost(
    make_cluster: Callable[..., Cluster], proxy_factory: Callable[..., RedisProxy]
) -> None:
    """Redis runs commit_node but its reply is lost: the counter moves once (the retried
    call or task finds the token committed by its own delivery and dispatches what it
    emitted), and every run completes."""
    proxy = proxy_factory(drop_reply_of=COMMIT_SHA, drop_probability=0.3)
    cluster = make_cluster(worker_redis_url=proxy.url)
    cluster.start_beat()
    _ambiguous(cluster, proxy, runs=12, timeout=90)


def test_ambiguous_commit_retry_dispatches_without_reconciler(
    make_cluster: Callable[..., Cluster], proxy_factory: Callable[..., RedisProxy]
) -> None:
    """The retry of an ambiguous commit should dispatch what the commit emitted (the
    Lua script's ``mine`` answer exists for this); no beat runs here."""
    proxy = proxy_factory(drop_reply_of=COMMIT_SHA, drop_probability=0.5)
    cluster = make_cluster(worker_redis_url=proxy.url)
    _ambiguous(cluster, proxy, runs=4, timeout=15)


def test_lost_publish_is_republished_by_the_reconciler(
    make_cluster: Callable[..., Cluster], proxy_factory: Callable[..., RedisProxy]
) -> None:
    """The worker commits ``first`` and publishes the token to ``mid``, but the LPUSH never
    reaches Redis (the proxy answers it): the token waits in the run's outbox until the
    reconciler finds the run idle (3 x WFRUNNER_RECONCILE_INTERVAL) and publishes it.
    (``mid`` has a timeout_ms, so its token is always a message: a task never runs it
    next after ``first``.)"""
    proxy = proxy_factory(swallow_push_of=b"node=mid from=")  # its argsrepr header
    cluster = make_cluster(worker_redis_url=proxy.url)
    mid = {**node("mid"), "timeout_ms": 60_000}
    workflow_id = cluster.register(chain(mid, "fault_lost_publish"))
    cluster.start_workers(1)
    cluster.start_beat()
    run_ids = [cluster.submit(workflow_id, {"tag": uuid.uuid4().hex}) for _ in range(3)]
    stuck = cluster.wait(run_ids, 60)
    repair = {
        r: cluster.rt.store.get_run(r).completed_at.timestamp() - proxy.swallowed[r]  # type: ignore[union-attr]
        for r in run_ids
        if r in proxy.swallowed
    }
    report = check_runs(cluster.rt, cluster.redis, run_ids, cluster.logs(),
                        lost_publishes=len(proxy.swallowed),
                        repair_seconds=sorted(round(s, 1) for s in repair.values()))  # fmt: skip
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert len(repair) == 3, report  # every run lost its publish ...
    # ... and got it back from the reconciler (how soon: repair_seconds in the report)
    assert cluster.count_in_logs("publishing 1 stalled tokens again") >= 3


def test_redis_restarted_empty_mid_run(make_cluster: Callable[..., Cluster]) -> None:
    """Redis (broker and hot state) is lost with runs in flight: the reconciler rebuilds
    every RUNNING run from PostgreSQL and publishes its outbox again."""
    cluster = make_cluster()
    # slow enough nodes that runs are still in flight once PostgreSQL holds part of them
    # (a run's history is first copied one WFRUNNER_FLUSH_INTERVAL after its start)
    workflow_id = cluster.register(chaos_dag(ms=(60, 140)))
    cluster.start_workers(2)
    cluster.start_beat()
    run_ids = [
        cluster.submit(workflow_id, {"tag": uuid.uuid4().hex, "score": 20 + 7 * i})
        for i in range(12)
    ]
    _wait_progress(cluster, run_ids, min_events=12)
    cluster.redis_server.restart_empty()
    lost_at = time.monotonic()
    stuck = cluster.wait(run_ids, 90)
    report = check_runs(cluster.rt, cluster.redis, run_ids, cluster.logs(),
                        rebuilt=cluster.count_in_logs("rebuilt from PostgreSQL"),
                        seconds_after_loss=round(time.monotonic() - lost_at, 1))  # fmt: skip
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    errors = {r: cluster.rt.store.get_run(r).error for r in run_ids}
    assert report.statuses == {"COMPLETED": 12}, {r: e for r, e in errors.items() if e}
    assert report.extra["rebuilt"] >= 1, report


def _wait_progress(cluster: Cluster, run_ids: list[str], min_events: int) -> None:
    """Until a quarter of the runs are RUNNING with ``min_events`` events stored in PostgreSQL
    (in flight, with part of their history copied). Workers take node work before new
    starts, so the first runs may have ended by then and the last not started: both are
    part of what a Redis loss meets."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        in_flight = [
            r
            for r in run_ids
            if cluster.status(r) == "RUNNING" and len(cluster.rt.store.list_events(r)) >= min_events
        ]
        if len(in_flight) >= len(run_ids) // 4:
            return
        time.sleep(0.1)
    raise AssertionError(f"runs made no progress\n{cluster.tails()}")
