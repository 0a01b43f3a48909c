"""wfrunner's hot state on a real Redis Cluster (three masters, a replica each), whatever
WFRUNNER_TEST_STATE says; Celery's broker is the module's own redis-server.

- runs spread over every master, and each run's keys sit in one slot of one master;
- a master SIGKILLed while a run is in flight: its replica promotes itself (after the
  2 s node timeout), the reconciler sees a new process behind the run's slot holding the
  replicated (possibly older) state, rebuilds the run from PostgreSQL, and the run
  completes once, its history complete.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from redis.crc import key_slot

from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.workflows import diamond, edge, node
from tests.redis_cluster import RedisClusterProcesses
from wfrunner import redisnodes
from wfrunner.engine import keys

RUNS = 24  # all three masters get one: chance of missing one is 3 * (2/3)^24 < 0.02 %


def _state_cluster(make_cluster: Callable[..., Cluster], cluster: RedisClusterProcesses) -> Cluster:
    return make_cluster(state_url=cluster.url)


def _gated(name: str, sleep_s: float) -> dict[str, object]:
    """start -> slow -> a, b -> join -> end: the slow node holds the run mid-flight."""
    ids = ["start", "a", "b", "join", "end"]
    nodes = [node(i) for i in ids] + [node("slow", "fault.long", sleep_s=sleep_s)]
    edges = [edge("start", "slow"), edge("slow", "a"), edge("slow", "b")]
    edges += [edge("a", "join"), edge("b", "join"), edge("join", "end")]
    return {"metadata": {"name": name}, "nodes": nodes, "edges": edges}


def _keys_by_master(cluster: RedisClusterProcesses) -> dict[str, dict[str, set[int]]]:
    """run id -> master address -> slots of the run's keys found on that master."""
    found: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for master in cluster.masters():
        with master.client() as c:
            for key in c.scan_iter(match="wfr:{*}:*", count=1000):
                run_id = key[len("wfr:{") : key.index("}")]
                if run_id.startswith(("wf:", "h:", "flush", "server")):
                    continue
                found[run_id][master.address].add(key_slot(key.encode()))
    return found


def test_runs_spread_over_every_master_each_in_one_slot(
    make_cluster: Callable[..., Cluster], redis_cluster: RedisClusterProcesses, tmp_path: Path
) -> None:
    deployment = _state_cluster(make_cluster, redis_cluster)
    workflow_id = deployment.register(_gated("cluster_spread", sleep_s=3))
    quick = deployment.register(diamond("cluster_diamond"))
    deployment.start_workers(2, concurrency=4)
    run_ids = [deployment.submit(workflow_id, {"tag": uuid.uuid4().hex}) for _ in range(RUNS)]
    markers = tmp_path / "markers"
    deadline = time.monotonic() + 60
    while len(list(markers.glob("*.slow.runs"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    spread = _keys_by_master(redis_cluster)
    owners = {run_id: redis_cluster.master_of(keys.meta_key(run_id)).address for run_id in run_ids}
    assert set(owners.values()) == {m.address for m in redis_cluster.masters()}
    live = [r for r in run_ids if r in spread]
    assert live, "no run had hot state in Redis"
    for run_id in live:
        [(address, slots)] = spread[run_id].items()  # one master holds all of the run's keys
        assert slots == {key_slot(keys.meta_key(run_id).encode())}, run_id  # in one slot
        assert address == owners[run_id]
    run_ids += [deployment.submit(quick, {"tag": uuid.uuid4().hex}) for _ in range(6)]
    assert deployment.wait(run_ids, 180) == []
    report = check_runs(deployment.rt, deployment.redis, run_ids, deployment.logs())
    assert_clean(report, deployment.tails())
    assert report.statuses == {"COMPLETED": len(run_ids)}


def test_a_master_killed_mid_run_fails_over_and_the_run_completes_once(
    make_cluster: Callable[..., Cluster], redis_cluster: RedisClusterProcesses, tmp_path: Path
) -> None:
    deployment = _state_cluster(make_cluster, redis_cluster)
    workflow_id = deployment.register(_gated("cluster_failover", sleep_s=4))
    deployment.start_workers(2)
    deployment.start_beat()
    tag = uuid.uuid4().hex
    run_id = deployment.submit(workflow_id, {"tag": tag})
    victim = redis_cluster.master_of(keys.meta_key(run_id))
    marker = tmp_path / "markers" / f"{tag}.slow.runs"
    identity = redisnodes.identity_keys(deployment.redis)[victim.address]
    deadline = time.monotonic() + 60
    while not (marker.exists() and deployment.redis.get(identity)):  # reconciler saw it
        assert time.monotonic() < deadline, deployment.tails()
        time.sleep(0.1)
    time.sleep(0.5)  # the replica catches up with the run's start (replication is async)
    victim.kill()
    try:
        redis_cluster.wait_ok()  # the replica promoted itself
        promoted = redis_cluster.master_of(keys.meta_key(run_id))
        assert promoted.address != victim.address
        assert deployment.wait([run_id], 120) == [], deployment.tails()
    finally:
        victim.start()  # back as a replica of the promoted one: the cluster is whole again
        redis_cluster.wait_ok()
    report = check_runs(deployment.rt, deployment.redis, [run_id], deployment.logs())
    assert_clean(report, deployment.tails())
    assert report.statuses == {"COMPLETED": 1}
    events = [e.type for e in deployment.rt.store.list_events(run_id)]
    assert events.count("run_completed") == 1
    assert "run_recovered" in events  # rebuilt from PostgreSQL once the failover was seen
    print(f"slow node ran {len(marker.read_text())} times; events: {events}")
