"""The in-process thread-pool worker (``wfrunner run --wait``, these tests) renews the
lease of a node it is running, like a prefork child does (tests/fault/test_leases.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import wfrunner
from tests.e2e.handlers import gates
from wfrunner import client, runtime
from wfrunner.engine import keys


def _lease_until(run_id: str) -> float:
    """When the lease of the run's only running token expires (waits for it to exist)."""
    client_ = runtime.runtime().redis
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        entries = list(client_.hvals(keys.running_key(run_id)))
        if entries:
            return float(str(entries[0]).split("|")[0])
        time.sleep(0.1)
    raise AssertionError("the node never began")


def test_thread_pool_worker_renews_the_lease_of_a_running_node(worker: Any) -> None:
    gate = "lease-renewed"
    gates[gate] = threading.Event()
    wf = {
        "nodes": [
            {"id": "A", "type": "function", "config": {"function_name": "t.wait", "gate": gate}}
        ],
        "edges": [],
    }
    run_id = wfrunner.start_run.delay(client.register_workflow(wf), {}).get(timeout=30)
    first = _lease_until(run_id)
    period = runtime.runtime().settings.lease_seconds / 3
    time.sleep(period * 1.5)  # one heartbeat later
    try:
        assert _lease_until(run_id) > first
    finally:
        gates[gate].set()
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"
