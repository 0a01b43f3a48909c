"""9-12. Leases and heartbeats: long nodes, long retries and killed workers.

A running node holds a lease on its token, renewed by its process's heartbeat: it counts
as activity for the idle-run detector, a second delivery of its message does not run it
again, and once its worker is gone the lease expires and the reconciler publishes the
token again within seconds, whatever the broker's visibility timeout."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.workflows import chain, node
from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.tasks.config import TASK_QUEUE

#: the idle-run detector on a short fuse, checked every second
SHORT_RUN_TIMEOUT = {"WFRUNNER_RUN_TIMEOUT": "3", "WFRUNNER_TIMEOUT_CHECK_INTERVAL": "1"}


def _runs(cluster: Cluster, tag: str, node_id: str) -> str:
    marker = Path(cluster.env["WFRUNNER_FAULT_MARKERS"]) / f"{tag}.{node_id}.runs"
    return marker.read_text() if marker.exists() else ""


def _finish(cluster: Cluster, run_id: str, timeout: float, **extra: Any) -> None:
    stuck = cluster.wait([run_id], timeout)
    report = check_runs(cluster.rt, cluster.redis, [run_id], cluster.logs(), **extra)
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    record = cluster.rt.store.get_run(run_id)
    assert record.status.value == "COMPLETED", f"{record.error}\n{cluster.tails()}"


def test_node_running_longer_than_the_run_timeout_completes(
    make_cluster: Callable[..., Cluster],
) -> None:
    """9. The node sleeps 8 s under WFRUNNER_RUN_TIMEOUT=3 with the detector running every
    second: its live lease is activity, so the run is not failed as idle."""
    cluster = make_cluster(**SHORT_RUN_TIMEOUT)
    workflow_id = cluster.register(chain(node("mid", "fault.long", sleep_s=8), "fault_long"))
    cluster.start_workers(1)
    cluster.start_beat()
    tag = uuid.uuid4().hex
    run_id = cluster.submit(workflow_id, {"tag": tag})
    _finish(cluster, run_id, 60, detector_passes=cluster.count_in_logs("detect_timeouts"))
    assert _runs(cluster, tag, "mid") == "x"


def test_retry_backoff_longer_than_the_run_timeout_completes(
    make_cluster: Callable[..., Cluster],
) -> None:
    """10. The first attempt fails; the retry is due 8 s later, under
    WFRUNNER_RUN_TIMEOUT=3: the pending retry is activity."""
    cluster = make_cluster(**SHORT_RUN_TIMEOUT)
    flaky = {**node("mid", "fault.fail_first"), "retry": {"max_attempts": 2, "backoff_ms": 8000}}
    workflow_id = cluster.register(chain(flaky, "fault_long_backoff"))
    cluster.start_workers(1)
    cluster.start_beat()
    run_id = cluster.submit(workflow_id, {"tag": uuid.uuid4().hex})
    _finish(cluster, run_id, 60)
    retried = [e for e in cluster.rt.store.list_events(run_id) if e.type == "node_retrying"]
    assert len(retried) == 1


def test_node_running_longer_than_the_visibility_timeout_runs_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    """11. The node sleeps 12 s under WFRUNNER_VISIBILITY_TIMEOUT=2, with beat and the
    reconciler: the reconciler leaves the token alone while its lease is live, and a copy
    of its message with the same task id (what kombu's unacked sweep sends once the
    visibility timeout passed) finds the lease live and only looks again later."""
    cluster = make_cluster(WFRUNNER_VISIBILITY_TIMEOUT="2")
    workflow_id = cluster.register(chain(node("mid", "fault.long", sleep_s=12), "fault_vt"))
    cluster.start_workers(2)
    cluster.start_beat()
    tag = uuid.uuid4().hex
    run_id = cluster.submit(workflow_id, {"tag": tag})
    name, task_id, args = _active_delivery(cluster, run_id, "mid")
    cluster.sender.send_task(name, args=args, task_id=task_id, queue=TASK_QUEUE)
    _finish(cluster, run_id, 60)
    assert _runs(cluster, tag, "mid") == "x"
    assert cluster.count_in_logs("another delivery is running it") >= 1  # the copy came
    # ... and stopped looking once the token was committed (or the run had ended)
    deadline = time.monotonic() + 20
    while not _gave_up(cluster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gave_up(cluster), cluster.tails()


def _gave_up(cluster: Cluster) -> bool:
    ends = ("token to mid ignored: token already committed", "token to mid ignored: run is")
    return any(cluster.count_in_logs(end) for end in ends)
    assert cluster.count_in_logs("stalled tokens again") == 0


def _active_delivery(cluster: Cluster, run_id: str, node_id: str) -> tuple[str, str, list[Any]]:
    """The task name, id and arguments of the task running ``node_id``: the one task of
    the run in flight once the node began (its own execute_node message, the task of a
    predecessor that ran it next, or start_run, which runs the entry nodes and what follows
    them; its task id is the run id)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = [
            Token.from_dict(json.loads(raw)).to_node
            for key, raw in cluster.redis.hgetall(keys.pending_key(run_id)).items()
            if cluster.redis.hexists(keys.running_key(run_id), key)
        ]
        active = cluster.sender.control.inspect(timeout=1).active() or {}
        tasks = [
            t
            for tasks in active.values()
            for t in tasks
            if (t["type"] == "wfrunner.execute_node" and t["args"][0] == run_id)
            or (t["type"] == "wfrunner.start_run" and t["id"] == run_id)
        ]
        if running == [node_id] and len(tasks) == 1:
            return str(tasks[0]["type"]), str(tasks[0]["id"]), list(tasks[0]["args"])
        time.sleep(0.2)
    raise AssertionError(f"no worker ran {node_id}\n{cluster.tails()}")


def test_killed_worker_group_recovers_within_the_lease_not_the_visibility_timeout(
    make_cluster: Callable[..., Cluster],
) -> None:
    """12. The worker running a node is SIGKILLed (master and children) under the default
    WFRUNNER_VISIBILITY_TIMEOUT (3600 s) and lease (15 s): its message stays unacked in
    Redis for an hour, yet a second worker finishes the run once the lease expired and
    the reconciler published the token again."""
    cluster = make_cluster(WFRUNNER_VISIBILITY_TIMEOUT="3600", WFRUNNER_LEASE_SECONDS="15")
    workflow_id = cluster.register(chain(node("mid", "fault.long", sleep_s=4), "fault_killed"))
    cluster.start_workers(1)
    cluster.start_beat()
    tag = uuid.uuid4().hex
    run_id = cluster.submit(workflow_id, {"tag": tag})
    deadline = time.monotonic() + 60
    while _runs(cluster, tag, "mid") != "x" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _runs(cluster, tag, "mid") == "x", cluster.tails()
    cluster.workers[0].kill()
    killed_at = time.monotonic()
    cluster.start_workers(1)
    _finish(cluster, run_id, 90)
    recovered = round(time.monotonic() - killed_at, 1)
    print(f"recovered {recovered} s after the kill")
    assert _runs(cluster, tag, "mid") == "xx"
    assert cluster.count_in_logs("publishing 1 stalled tokens again") >= 1
