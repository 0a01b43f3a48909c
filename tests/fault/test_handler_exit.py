"""11. A handler that raises SystemExit (or KeyboardInterrupt) on a real prefork worker:
its node fails at once with an error naming the handler and the exception, the pool
process survives (no "worker died" redelivery), and the worker goes on serving other runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.workflows import chain, node


@pytest.mark.parametrize(
    ("kind", "raised"), [("exit", "SystemExit: 3"), ("interrupt", "KeyboardInterrupt")]
)
def test_handler_base_exception_fails_its_node(
    make_cluster: Callable[..., Cluster], kind: str, raised: str
) -> None:
    cluster = make_cluster()
    doomed_wf = cluster.register(chain(node("quit", "fault.exit", kind=kind), f"fault_{kind}"))
    healthy_wf = cluster.register(chain(node("mid"), "fault_healthy"))
    cluster.start_workers(1)
    tag = uuid.uuid4().hex
    doomed = cluster.submit(doomed_wf, {"tag": tag})
    healthy = [cluster.submit(healthy_wf, {"tag": f"{tag}{i}"}) for i in range(4)]
    assert not cluster.wait([doomed, *healthy], 60), cluster.tails()

    record = cluster.rt.store.get_run(doomed)
    assert record.status.value == "FAILED"
    assert record.error == (
        f"node 'quit' failed: handler 'fault.exit' raised {raised}: "
        "a handler must return or raise an Exception, not stop the worker"
    )
    assert {cluster.status(r) for r in healthy} == {"COMPLETED"}
    started = [e for e in cluster.rt.store.list_events(doomed)
               if e.type == "node_started" and e.node_id == "quit"]  # fmt: skip
    assert len(started) == 1  # failed on its first delivery, not after "worker died" x3
    assert cluster.count_in_logs("exited with") == 0  # no pool process died
    report = check_runs(cluster.rt, cluster.redis, [doomed, *healthy], cluster.logs())
    assert_clean(report, cluster.tails())
