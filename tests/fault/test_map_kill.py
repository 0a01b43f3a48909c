"""A map node whose every element's pool process is SIGKILLed once, mid-handler (the OOM
model): each element's message comes back (``task_reject_on_worker_lost``) and runs
again, every element's result is recorded exactly once, in order, and the run
completes with no hot state left."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.fault.checks import _hot_keys
from tests.fault.cluster import Cluster
from tests.fault.workflows import node


def test_every_element_killed_once_still_maps_each_exactly_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    mapper = node("M", "fault.die_once", map_over="inputs.items", max_concurrency=2)
    end = {"id": "end", "type": "transform", "config": {"expression": "input"}}
    workflow = cluster.register(
        {"nodes": [mapper, end], "edges": [{"from": "M", "to": "end"}], "metadata": {}}
    )
    cluster.start_workers(1)
    tag = uuid.uuid4().hex
    items = [{"tag": f"{tag}-{i}"} for i in range(5)]
    run_id = cluster.submit(workflow, {"items": items})
    stuck = cluster.wait([run_id], 120)
    assert not stuck, cluster.tails()
    assert cluster.status(run_id) == "COMPLETED", cluster.tails()

    events = cluster.rt.store.list_events(run_id)
    done = Counter(e.data["index"] for e in events if e.type == "map_item")
    assert done == Counter(range(5))  # each element's result recorded once
    doc = cluster.rt.store.get_run(run_id)
    assert doc.status.value == "COMPLETED"
    outputs = cluster.rt.store.load_payloads(run_id)
    final = [e for e in events if e.type == "node_completed" and e.node_id == "end"]
    assert outputs[final[0].data["output_ref"]] == [
        {"tag": f"{tag}-{i}", "node": "M", "survived": True} for i in range(5)
    ]
    markers = Path(cluster.env["WFRUNNER_FAULT_MARKERS"])
    assert sorted(p.name for p in markers.glob(f"{tag}-*.M.died")) == [
        f"{tag}-{i}.M.died" for i in range(5)
    ]
    assert cluster.count_in_logs("exited with 'signal 9") >= 5
    assert not _hot_keys(cluster.redis, run_id)
