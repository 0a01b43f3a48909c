"""Two ``celery -A wfrunner beat`` processes against one deployment, by mistake: each
with its own schedule file, both sending the reconciler, the timeout detector and the
schedule tick every second to three worker hosts. Doubling them must change nothing a
user can see:

- cron: each fire time of a schedule is handled by one tick (no run started twice, no
  start sent twice), the overlap policies hold (a ``queue`` or ``skip`` schedule's runs
  never overlap in time), every missed time of a ``catch_up: all`` schedule fires once;
- timeouts: a node running longer than WFRUNNER_RUN_TIMEOUT and a retry due later than
  it are activity, for both detectors: no run is timed out;
- the reconciler: runs whose start message was lost are started (by one of the two),
  and no token republished by two passes runs twice: with no worker killed, every
  token's handler is called exactly once;
- flushes: every run's event log is whole and replays to what PostgreSQL stores.
"""

from __future__ import annotations

import itertools
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fault.checks import CounterSampler, assert_clean, check_runs
from tests.fault.cluster import KNOBS as BASE_KNOBS
from tests.fault.cluster import Cluster
from tests.fault.effects import check_effects, check_replays, check_republishes
from tests.fault.proxy import RedisProxy
from tests.fault.test_fleet import HOSTS, SEED, inputs
from tests.fault.workflows import chain, edge, effect, fleet_shapes, node
from wfrunner.schedules.firing import run_id_of

#: fire times each schedule missed before the test (a minute cron, backdated)
MISSED = 6
#: the schedules: a missed time each, one at a time; the first, the others skipped
#: while it runs; the latest only
POLICIES = {
    "db_queue": {"overlap": "queue", "catch_up": "all"},
    "db_skip": {"overlap": "skip", "catch_up": "all"},
    "db_latest": {"overlap": "skip", "catch_up": "latest"},
}
KNOBS = {
    "WFRUNNER_RECONCILE_INTERVAL": "1",
    "WFRUNNER_TIMEOUT_CHECK_INTERVAL": "1",
    "WFRUNNER_SCHEDULE_INTERVAL": "1",
    "WFRUNNER_RUN_TIMEOUT": "6",
}
#: seconds a republished token is left alone (WFRUNNER_VISIBILITY_TIMEOUT)
HOLD = float(BASE_KNOBS["WFRUNNER_VISIBILITY_TIMEOUT"])


def scheduled(name: str, **policy: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "nodes": [effect("one"), effect("two")],
        "edges": [edge("one", "two")],
        "schedule": {"cron": "* * * * *", "inputs": {"tag": name}, **policy},
    }


def slow_and_flaky() -> list[dict[str, Any]]:
    """A node running 9 s and a retry due 8 s after its first attempt, both past
    WFRUNNER_RUN_TIMEOUT (6 s)."""
    flaky = {**node("flaky", "fault.fail_first"), "retry": {"max_attempts": 2, "backoff_ms": 8000}}
    slow = [effect("first"), effect("slow", ms=[9000, 9000]), effect("last")]
    return [
        {
            "metadata": {"name": "db_slow"},
            "nodes": slow,
            "edges": [edge("first", "slow"), edge("slow", "last")],
        },
        {
            "metadata": {"name": "db_flaky"},
            "nodes": [flaky, effect("after")],
            "edges": [edge("flaky", "after")],
        },
    ]


def backdate(cluster: Cluster, minutes: int) -> None:
    """The schedules last fired ``minutes`` ago: that many fire times are due."""
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes)
    with cluster.rt.store._engine.begin() as connection:
        connection.execute(sa.text("UPDATE schedules SET last_fired_at = :t"), {"t": since})


_START = re.compile(r"Task wfrunner\.start_run\[([0-9a-f]+)\] received")
_TICK = re.compile(r"Task wfrunner\.fire_schedules\[[0-9a-f-]+\] succeeded in [0-9.e-]+s: (.*)")


def started_fires(cluster: Cluster, name: str) -> list[str]:
    """The runs the schedule's fires started, oldest first, after checking each fire
    started the run of its own time."""
    fires = list(reversed(cluster.rt.store.list_fires(name, limit=500)))
    for fire in fires:
        if fire.status == "started":
            assert fire.run_id == run_id_of(name, fire.fire_time), fire
    return [str(f.run_id) for f in fires if f.status == "started"]


def wait_for_the_queue(cluster: Cluster, name: str, timeout: float) -> None:
    """Until every time the ``queue`` schedule missed has started (one after the other)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fires = cluster.rt.store.list_fires(name, limit=500)
        if len(fires) >= MISSED and all(f.status == "started" for f in fires):
            return
        time.sleep(0.5)


def runs_of(cluster: Cluster, workflow_id: str) -> set[str]:
    return {r.run_id for r in cluster.rt.store.list_runs(workflow_id=workflow_id, limit=500).items}


@pytest.mark.slow  # (about a minute and a half: `python -m pytest -m slow`)
def test_two_beats_change_nothing(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(**KNOBS)
    shapes = [cluster.register(d) for d in fleet_shapes().values()]
    slow, flaky = (cluster.register(d) for d in slow_and_flaky())
    schedules = {
        name: cluster.register(scheduled(name, **policy)) for name, policy in POLICIES.items()
    }
    backdate(cluster, MISSED)
    cluster.start_hosts(HOSTS)
    cluster.start_beat(2)
    began = time.monotonic()
    rng = random.Random(SEED)
    with CounterSampler(cluster.redis_server.url) as sampler:
        submitted = [cluster.submit(shapes[i % len(shapes)], inputs(rng)) for i in range(20)]
        submitted += [cluster.submit(w, {"tag": uuid.uuid4().hex}) for w in (slow, slow, flaky)]
        lost = [  # recorded QUEUED, their start message never sent: the reconciler starts them
            cluster.rt.store.create_run(shapes[0], {"tag": uuid.uuid4().hex}, 1).id
            for _ in range(4)
        ]
        stuck = cluster.wait(submitted + lost, 120)
        wait_for_the_queue(cluster, "db_queue", 120)
        for b in cluster.beats:
            b.stop()
        time.sleep(2)  # a tick sent before the stop expires after one interval (1 s)
        fired = {name: started_fires(cluster, name) for name in schedules}
        everything = [r for runs in fired.values() for r in runs]
        stuck += cluster.wait(everything, 60)
    logs = cluster.logs()
    starts = Counter(m for log in logs for m in _START.findall(log))
    ticks = [t for log in logs for t in _TICK.findall(log)]
    run_ids = submitted + lost + everything
    report = check_runs(
        cluster.rt,
        cluster.redis,
        run_ids,
        logs,
        sampler,
        seconds=round(time.monotonic() - began, 1),
        beats={b.name: b.text().count("Sending due task") for b in cluster.beats},
        ticks=len(ticks),
        ticks_passing_over_a_held_schedule=sum("held_elsewhere" in t for t in ticks),
        scheduled={n: len(r) for n, r in fired.items()},
        lost_starts_started=cluster.count_in_logs("its start message was lost; started"),
        republished=cluster.count_in_logs("stalled tokens again"),
    )
    markers = Path(cluster.env["WFRUNNER_FAULT_MARKERS"])
    check_effects(cluster.rt, run_ids, markers, report, once=True)
    check_republishes(cluster.rt, run_ids, HOLD, report)
    check_replays(cluster.rt, run_ids, report)
    print(report)
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": len(run_ids)}, report
    assert all(n > 10 for n in report.extra["beats"].values()), report  # both beats sent
    for name, workflow_id in schedules.items():  # every run a schedule has is a fire's
        assert runs_of(cluster, workflow_id) == set(fired[name]), (name, report)
    # one start_run message per scheduled run: no tick fired a time another had handled
    twice = {r: n for r, n in starts.items() if r in everything and n != 1}
    assert not twice, f"scheduled runs started more than once: {twice}\n{report}"
    for name in ("db_queue", "db_skip"):  # the overlap policies held: no two runs at once
        assert_one_at_a_time(cluster, fired[name], report)
    assert len(fired["db_queue"]) >= MISSED and fired["db_latest"], report


def assert_one_at_a_time(cluster: Cluster, run_ids: list[str], report: Any) -> None:
    runs = sorted((cluster.rt.store.get_run(r) for r in run_ids), key=lambda r: r.started_at)
    for before, after in itertools.pairwise(runs):
        assert before.completed_at is not None and after.started_at is not None
        assert after.started_at >= before.completed_at, (before, after, report)


def test_two_reconcilers_publish_a_lost_message_once(
    make_cluster: Callable[..., Cluster], proxy_factory: Callable[..., RedisProxy]
) -> None:
    """The message to node ``mid`` never reaches Redis (the proxy answers its LPUSH, once
    per run): the token waits in the outbox until a reconciler finds the run idle. Then
    the only node worker is kept busy 8 s (a blocker run), so the message published again
    waits in the queue while both beats' reconcilers keep looking at the idle run: the
    republish mark (``lua/claim_stalled.lua``) must keep every pass but one per
    WFRUNNER_VISIBILITY_TIMEOUT from publishing it again, and ``mid``'s handler runs
    once. (``mid`` has a timeout_ms, so its token is always a message.)"""
    proxy = proxy_factory(swallow_push_of=b"node=mid from=")
    cluster = make_cluster(worker_redis_url=proxy.url, **{**KNOBS, "WFRUNNER_RUN_TIMEOUT": "60"})
    mid = {**effect("mid"), "timeout_ms": 60_000}
    workflow_id = cluster.register(chain(mid, "db_lost_publish", after=effect("last")))
    blocker = cluster.register(
        {"metadata": {"name": "db_blocker"}, "nodes": [effect("block", ms=[8000, 8000])],
         "edges": []}
    )  # fmt: skip
    cluster.start_hosts([("hostA", "prefork", 1)], queues="wfrunner.completion")
    cluster.start_hosts([("hostB", "prefork", 1)], queues="wfrunner.tasks")
    cluster.start_beat(2)
    run_ids = [cluster.submit(workflow_id, {"tag": uuid.uuid4().hex}) for _ in range(2)]
    deadline = time.monotonic() + 30
    while len(proxy.swallowed) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    run_ids.append(cluster.submit(blocker, {"tag": uuid.uuid4().hex}))
    stuck = cluster.wait(run_ids, 90)
    report = check_runs(cluster.rt, cluster.redis, run_ids, cluster.logs(),
                        lost_publishes=len(proxy.swallowed))  # fmt: skip
    check_effects(cluster.rt, run_ids, Path(cluster.env["WFRUNNER_FAULT_MARKERS"]), report, True)
    check_republishes(cluster.rt, run_ids, HOLD, report)
    check_replays(cluster.rt, run_ids, report)
    print(report)
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": 3}, report
    assert len(proxy.swallowed) == 2 and report.extra["tokens_republished"] >= 2, report
