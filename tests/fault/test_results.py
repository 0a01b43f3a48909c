"""10. Engine tasks store no Celery results: after runs complete on real worker processes
(and beat's reconciler and timeout detector ran), the only ``celery-task-meta-*`` keys
are the runs' ``start_run`` results, whose value is the run id (the public handle)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from tests.fault.cluster import Cluster
from tests.fault.workflows import diamond


def test_engine_tasks_store_no_results(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(WFRUNNER_TIMEOUT_CHECK_INTERVAL="1")
    workflow = cluster.register(diamond("fault_results"))
    cluster.start_workers(1)
    cluster.start_beat()
    tag = uuid.uuid4().hex
    runs = [cluster.submit(workflow, {"tag": f"{tag}{i}"}) for i in range(4)]
    assert not cluster.wait(runs, 60), cluster.tails()
    assert {cluster.status(r) for r in runs} == {"COMPLETED"}
    time.sleep(3)  # several reconciler and detector passes
    assert cluster.count_in_logs("wfrunner.reconcile[") > 0
    assert cluster.count_in_logs("wfrunner.detect_timeouts[") > 0
    metas = cluster.redis.keys("celery-task-meta-*")
    extra = [json.loads(cluster.redis.get(m) or "{}") for m in metas if m[17:] not in runs]
    assert sorted(metas) == sorted(f"celery-task-meta-{r}" for r in runs), extra
    for run_id in runs:
        stored = json.loads(cluster.redis.get(f"celery-task-meta-{run_id}") or "{}")
        assert stored["result"] == run_id
