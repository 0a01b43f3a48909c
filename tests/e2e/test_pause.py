"""Pausing and resuming runs on a real worker, Redis and PostgreSQL: nothing new starts
while a run is paused, its running node finishes and commits, and resuming goes on
exactly where it stopped (every node run once)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

import wfrunner
from tests.e2e.handlers import calls, gates
from tests.e2e.test_approvals import start, until
from wfrunner import client
from wfrunner.engine import keys
from wfrunner.errors import ConflictError, NotFoundError
from wfrunner.lifecycle import expire_idle_runs
from wfrunner.runtime import runtime
from wfrunner.states import RunStatus
from wfrunner.tasks.runs import reconcile


def chain(tag: str) -> dict[str, Any]:
    """slow (blocks on the gate ``tag``) -> B -> C, B and C counted under ``tag``."""
    return {
        "nodes": [
            {"id": "slow", "type": "function", "config": {"function_name": "t.wait", "gate": tag}},
            {"id": "B", "type": "function", "config": {"function_name": "t.count", "tag": tag}},
            {"id": "C", "type": "function",
             "config": {"function_name": "t.count", "tag": f"{tag}-C"}},
        ],
        "edges": [{"from": "slow", "to": "B"}, {"from": "B", "to": "C"}],
    }  # fmt: skip


def paused_while_slow_runs(worker: Any) -> tuple[str, str]:
    tag = f"pause-{time.monotonic_ns()}"
    run_id = start(worker, chain(tag), {"x": 1})
    until(lambda: calls[f"t.wait:{tag}"] == 1)
    doc = wfrunner.pause_run(run_id, "deploying", by="dora")
    assert doc["status"] == "PAUSED"
    return run_id, tag


def test_a_paused_run_finishes_its_running_node_and_starts_nothing_until_resumed(
    worker: Any,
) -> None:
    run_id, tag = paused_while_slow_runs(worker)
    rt = runtime()
    assert rt.store.get_run(run_id).status is RunStatus.PAUSED
    assert [r.run_id for r in client.list_runs(status=[RunStatus.PAUSED]).items].count(run_id) == 1
    gates[tag].set()  # the running node returns: it commits, its successor waits
    until(lambda: client.get_run(run_id)["nodes"]["slow"]["status"] == "COMPLETED")
    time.sleep(3.0)  # a long pause: B's token was published and refused, nothing runs
    # the reconciler does not publish a paused run's tokens, however idle it looks
    rt.redis.hset(keys.meta_key(run_id), "activity", time.time() - 3600)
    assert run_id not in reconcile.apply().get()
    time.sleep(1.0)
    assert calls[f"t.count:{tag}"] == 0
    doc = client.get_run(run_id)
    assert doc["status"] == "PAUSED"
    assert doc["nodes"]["B"]["status"] == "PENDING"
    assert doc["nodes"]["B"]["attempts"] == 0  # a refused delivery is no attempt
    [(key, token)] = rt.state.pending(run_id).items()
    assert token.to_node == "B"
    assert rt.redis.hget(keys.attempts_key(run_id), key) is None

    doc = wfrunner.resume_run(run_id, by="dora")
    assert doc["status"] in ("RUNNING", "COMPLETED")
    done = client.wait_for_run(run_id, timeout=30)
    assert done["status"] == "COMPLETED"
    assert calls[f"t.wait:{tag}"] == 1 and calls[f"t.count:{tag}"] == 1
    assert calls[f"t.count:{tag}-C"] == 1
    assert all(n["attempts"] == 1 for n in done["nodes"].values())
    events = [e for e in rt.store.list_events(run_id)]
    paused = next(e for e in events if e.type == "run_paused")
    assert (paused.data["by"], paused.data["reason"]) == ("dora", "deploying")
    types = [e.type for e in events]
    assert types.index("run_paused") < types.index("run_resumed")
    started_b = next(
        i for i, e in enumerate(events) if e.type == "node_started" and e.node_id == "B"
    )
    assert started_b > types.index("run_resumed")


def test_pausing_twice_resuming_a_running_run_or_an_ended_one_is_refused(worker: Any) -> None:
    run_id, tag = paused_while_slow_runs(worker)
    with pytest.raises(ConflictError, match="is paused already"):
        wfrunner.pause_run(run_id)
    wfrunner.resume_run(run_id)
    with pytest.raises(ConflictError, match="is not paused"):
        wfrunner.resume_run(run_id)
    gates[tag].set()
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"
    with pytest.raises(ConflictError, match=r"has already ended \(COMPLETED\): nothing to pause"):
        wfrunner.pause_run(run_id)
    with pytest.raises(ConflictError, match=r"has already ended \(COMPLETED\)"):
        wfrunner.resume_run(run_id)
    with pytest.raises(NotFoundError):
        wfrunner.pause_run("no-such-run")
    with pytest.raises(NotFoundError):
        wfrunner.resume_run("no-such-run")


def test_cancelling_a_paused_run(worker: Any) -> None:
    run_id, tag = paused_while_slow_runs(worker)
    gates[tag].set()
    until(lambda: client.get_run(run_id)["nodes"]["slow"]["status"] == "COMPLETED")
    doc = wfrunner.cancel_run(run_id, "not today")
    assert doc["status"] == "CANCELLED"
    assert calls[f"t.count:{tag}"] == 0
    with pytest.raises(ConflictError, match="has already ended"):
        wfrunner.resume_run(run_id)


def test_a_paused_run_is_never_timed_out(worker: Any) -> None:
    run_id, tag = paused_while_slow_runs(worker)
    gates[tag].set()
    until(lambda: client.get_run(run_id)["nodes"]["slow"]["status"] == "COMPLETED")
    rt = runtime()
    # PostgreSQL missed the pause (its write came after a crash): the detector lists the
    # run, idle far beyond the timeout, and still leaves it alone
    rt.store.transition_run(run_id, RunStatus.RUNNING, from_states=[RunStatus.PAUSED])
    idle_for = 2 * rt.settings.run_timeout
    with rt.store._engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE runs SET last_activity_at = now() - make_interval(secs => :s) "
                "WHERE id = :id"
            ),
            {"s": idle_for, "id": run_id},
        )
    rt.redis.hset(keys.meta_key(run_id), "activity", time.time() - idle_for)
    assert run_id in rt.store.find_idle_runs(rt.settings.run_timeout)
    assert run_id not in expire_idle_runs(rt)
    assert rt.state.meta(run_id)["state"] == "paused"
    with pytest.raises(ConflictError, match="is paused already"):
        wfrunner.pause_run(run_id)  # ...and pausing again repairs PostgreSQL's status
    assert rt.store.get_run(run_id).status is RunStatus.PAUSED
    wfrunner.resume_run(run_id)
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"


def test_a_run_whose_last_node_commits_while_paused_completes(worker: Any) -> None:
    tag = f"last-{time.monotonic_ns()}"
    one = {"nodes": [chain(tag)["nodes"][0]], "edges": []}
    run_id = start(worker, one, {"x": 1})
    until(lambda: calls[f"t.wait:{tag}"] == 1)
    wfrunner.pause_run(run_id)
    gates[tag].set()
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"


def test_a_child_run_that_ends_while_its_parent_is_paused_is_taken_on_resume(
    worker: Any,
) -> None:
    """Pausing a parent does not pause its child runs; a child's end is recorded, and the
    parent's subworkflow node goes on once the parent is resumed."""
    tag = f"child-{time.monotonic_ns()}"
    child_flow = {"nodes": [chain(tag)["nodes"][0]], "edges": []}
    client.register_workflow({"metadata": {"name": f"child-{tag}"}, **child_flow})
    parent = {
        "metadata": {"name": f"parent-{tag}"},
        "nodes": [
            {"id": "S", "type": "subworkflow", "config": {"workflow": f"child-{tag}"}},
            {"id": "T", "type": "function",
             "config": {"function_name": "t.count", "tag": f"{tag}-T"}},
        ],
        "edges": [{"from": "S", "to": "T"}],
    }  # fmt: skip
    run_id = start(worker, parent, {"x": 1})
    until(lambda: calls[f"t.wait:{tag}"] == 1)
    wfrunner.pause_run(run_id)
    gates[tag].set()
    [child] = runtime().store.child_runs(run_id)
    assert client.wait_for_run(child.id, timeout=30)["status"] == "COMPLETED"
    time.sleep(2.0)
    doc = client.get_run(run_id)
    assert doc["status"] == "PAUSED" and doc["nodes"]["S"]["status"] != "COMPLETED"
    assert calls[f"t.count:{tag}-T"] == 0
    wfrunner.resume_run(run_id)
    done = client.wait_for_run(run_id, timeout=30)
    assert done["status"] == "COMPLETED", done["error"]
    assert calls[f"t.count:{tag}-T"] == 1 and calls[f"t.wait:{tag}"] == 1
