"""10. A run's start_run message is lost: the reconciler starts it from PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.procs import RedisServer
from tests.fault.workflows import diamond


def test_a_lost_start_message_is_replaced_by_the_reconciler(
    make_cluster: Callable[..., Cluster], fault_redis: RedisServer
) -> None:
    """Submitted while no worker runs; Redis restarts empty: the start_run message is gone
    and the run is QUEUED in PostgreSQL only. The reconciler starts it; it completes."""
    cluster = make_cluster()
    workflow_id = cluster.register(diamond())
    run_ids = [cluster.submit(workflow_id, {"tag": uuid.uuid4().hex}) for _ in range(3)]
    fault_redis.restart_empty()
    assert cluster.broker.dbsize() == 0  # the messages are gone
    cluster.start_workers(1)
    cluster.start_beat()
    stuck = cluster.wait(run_ids, 60)
    started = cluster.count_in_logs("start message was lost")
    report = check_runs(
        cluster.rt, cluster.redis, run_ids, cluster.logs(), started_by_reconciler=started
    )
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": 3}, report
    assert report.extra["started_by_reconciler"] == 3, report
