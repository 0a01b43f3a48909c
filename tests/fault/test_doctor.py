"""``wfrunner doctor`` and a worker killed mid-node: its lease expires, the diagnosis
names the delivery, its host and process and the registered worker, and ``--repair
requeue`` gets the run to complete on a new worker. No celery beat runs, and the broker's
visibility timeout is an hour: nothing but the repair brings the token back."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable

from tests.entry_point import invoke
from tests.fault.cluster import Cluster
from tests.fault.workflows import chain, node
from wfrunner.engine import keys
from wfrunner.engine.leases import Lease


def test_a_worker_killed_mid_node_is_a_dead_worker_and_requeue_completes_the_run(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(WFRUNNER_VISIBILITY_TIMEOUT="3600")
    workflow_id = cluster.register(
        chain(node("mid", "fault.slow_first", slow_s=120), "doctor_dead_worker")
    )
    cluster.start_workers(1, concurrency=1)
    victim = cluster.workers[0]
    run_id = cluster.submit(workflow_id, {"tag": uuid.uuid4().hex})

    def held() -> Lease | None:
        """The lease of the delivery running ``mid`` (not the short ``first`` before it)."""
        for key, entry in cluster.redis.hgetall(keys.running_key(run_id)).items():
            lease = Lease.parse(entry)
            if "->mid@" in key and lease is not None and lease.held:
                return lease
        return None

    deadline = time.monotonic() + 60
    while held() is None:
        assert time.monotonic() < deadline, cluster.tails()
        time.sleep(0.1)
    lease = held()
    assert lease is not None
    victim.kill()
    time.sleep(float(cluster.knobs["WFRUNNER_LEASE_SECONDS"]) + 1.0)  # the lease expires

    shown = invoke("doctor", run_id, "--json", env=cluster.env)
    assert shown.returncode == 1, shown.stderr
    diagnosis = json.loads(shown.stdout)["runs"][0]
    dead = diagnosis["findings"][0]
    assert dead["kind"] == "dead_worker" and dead["stuck"], diagnosis
    assert dead["node"] == "mid" and dead["action"] == "requeue"
    task = lease.holder.split("@", 1)[1]
    assert f"task {task} on {socket.gethostname()}" in dead["summary"]
    assert dead["details"]["workers"] == [f"fault1@{socket.gethostname()}"]
    assert diagnosis["suggested_action"] == "requeue"

    fixed = invoke("doctor", run_id, "--repair", "requeue", env=cluster.env)
    assert fixed.returncode == 0, fixed.stderr
    assert "published 1 token again: mid" in fixed.stdout
    again = invoke("doctor", run_id, "--repair", "requeue", env=cluster.env)
    assert again.returncode == 0 and "nothing to requeue" in again.stdout  # its message waits
    queued = json.loads(invoke("doctor", run_id, "--json", env=cluster.env).stdout)["runs"][0]
    assert [f["kind"] for f in queued["findings"]] == ["queued"] and not queued["stuck"]
    victim.start()
    assert not cluster.wait([run_id], 60), cluster.tails()
    assert cluster.status(run_id) == "COMPLETED"
    repaired = [e for e in cluster.rt.store.list_events(run_id) if e.type == "reconciler_repaired"]
    assert len(repaired) == 1 and repaired[0].data["by"].startswith("doctor")
    assert repaired[0].data["tokens"][0]["cause"] == "dead_worker"
