"""Completion: event-driven (one check per run), timeouts, failure isolation."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

import wfrunner
from tests.e2e.handlers import calls, gates
from wfrunner import client, lifecycle, redisclient
from wfrunner.engine import keys
from wfrunner.errors import StoreError
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings


def fn(node_id: str, name: str = "t.echo", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def edges(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": a, "to": b} for a, b in pairs]


def test_ten_nodes_two_terminals_make_one_completion_check(run_workflow: Any) -> None:
    """Only the commit that takes the counter to 0 asks for the check (issue 9: one per
    run, not one per terminal node)."""
    nodes = [fn(f"n{i}") for i in range(10)]
    # n0 -> n1..n4 chain, n0 -> n5..n8 chain; terminals n4 and n9 (n8 -> n9)
    wf = {
        "nodes": nodes,
        "edges": edges(
            ("n0", "n1"),
            ("n1", "n2"),
            ("n2", "n3"),
            ("n3", "n4"),
            ("n0", "n5"),
            ("n5", "n6"),
            ("n6", "n7"),
            ("n7", "n8"),
            ("n8", "n9"),
        ),
    }
    doc = run_workflow(wf, {})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["stats"]["completion_checks"] == 1
    assert doc["stats"]["nodes_executed"] == 10


def test_completion_is_published_once_and_hot_state_is_removed(worker: Any, state_url: str) -> None:
    wf = {"nodes": [fn("A"), fn("B"), fn("C")], "edges": edges(("A", "B"), ("A", "C"))}
    workflow_id = client.register_workflow(wf)
    listener = redisclient.connect(state_url, decode_responses=True)
    pubsub = listener.pubsub()
    pubsub.subscribe(keys.COMPLETION_CHANNEL)
    run_id = wfrunner.start_run.delay(workflow_id, {}).get(timeout=30)
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED"
    published = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message" and message["data"] == run_id:
            published.append(message)
    assert len(published) == 1
    assert list(listener.scan_iter(match=f"wfr:{{{run_id}}}:*")) == []
    pubsub.close()
    listener.close()


def test_branch_that_takes_no_edge_completes_through_the_zero_counter(run_workflow: Any) -> None:
    wf = {
        "nodes": [fn("A"), fn("B")],
        "edges": [{"from": "A", "to": "B", "condition": "output.go == true"}],
    }
    doc = run_workflow(wf, {"go": False})
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["B"]["status"] == "SKIPPED"
    assert doc["stats"]["completion_checks"] == 1, doc  # A is not terminal: the zero raised it


def test_a_failed_run_stops_its_other_branches(
    worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wfrunner.tasks.execution")
    gate = "failed-run"
    gates[gate] = threading.Event()
    wf = {
        "nodes": [
            fn("A"),
            fn("B", "t.boom"),
            fn("C", "t.wait", gate=gate),
            fn("D", "t.count", tag="after-failure"),
        ],
        "edges": edges(("A", "B"), ("A", "C"), ("C", "D")),
    }
    workflow_id = client.register_workflow(wf)
    run_id = wfrunner.start_run.delay(workflow_id, {}).get(timeout=30)
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "FAILED"
    # C finishes only now, after B failed the run (or, if B failed first, C's delivery
    # finds the run ended at once): either way its token is dropped, nothing dispatched
    gates[gate].set()
    refused = f"run {run_id}: token to C ignored: run is"
    deadline = time.monotonic() + 30
    while not any(refused in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "C's delivery never reported being dropped"
        time.sleep(0.05)
    # C's commit was refused, so nothing was dispatched after it: D never runs
    assert calls["t.count:after-failure"] == 0
    final = client.get_run(run_id)
    assert final["nodes"]["C"]["status"] != "COMPLETED"
    assert final["nodes"]["D"]["status"] == "SKIPPED"
    assert final["status"] == "FAILED"


def test_timeout_detector_fails_an_idle_run(worker: Any, engine_env: dict[str, str]) -> None:
    gate = "idle-run"
    gates[gate] = threading.Event()
    wf = {
        "nodes": [fn("A", "t.wait", gate=gate), fn("B", "t.count", tag="after-timeout")],
        "edges": edges(("A", "B")),
    }
    workflow_id = client.register_workflow(wf)
    run_id = wfrunner.start_run.delay(workflow_id, {}).get(timeout=30)
    impatient = Runtime(Settings.from_env({**engine_env, "WFRUNNER_RUN_TIMEOUT": "1"}))
    running = keys.running_key(run_id)
    deadline = time.monotonic() + 20
    while not impatient.redis.hkeys(running) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # no commit for longer than the timeout, but A is running: not idle
    assert lifecycle.expire_idle_runs(impatient) == []
    # A's worker is gone (its heartbeat stopped, its lease expired) and nothing reclaims
    # the token: the run is idle now
    impatient.redis.delete(running)
    deadline = time.monotonic() + 20
    expired: list[str] = []
    while run_id not in expired and time.monotonic() < deadline:
        time.sleep(0.5)
        expired += lifecycle.expire_idle_runs(impatient)
    assert run_id in expired
    gates[gate].set()
    time.sleep(1)
    doc = client.get_run(run_id)
    assert doc["status"] == "FAILED"
    assert doc["error"] == "run timed out: no activity for 1 s (WFRUNNER_RUN_TIMEOUT)"
    assert calls["t.count:after-timeout"] == 0
    impatient.close()


def test_detector_is_scheduled_by_beat() -> None:
    schedule = wfrunner.app.conf.beat_schedule["wfrunner-detect-timeouts"]
    assert schedule["task"] == "wfrunner.detect_timeouts"
    assert schedule["schedule"] == float(Settings.from_env().timeout_check_interval)


def test_detect_timeouts_task_runs_on_the_worker(worker: Any, engine_env: dict[str, str]) -> None:
    """The beat task, run by the worker, fails a run that went idle (its only node's
    worker died: no lease, no commit) and leaves a busy one alone."""
    from wfrunner.tasks.runs import detect_timeouts

    gate = "detector-task"
    gates[gate] = threading.Event()
    wf = {"nodes": [fn("A", "t.wait", gate=gate), fn("B")], "edges": edges(("A", "B"))}
    workflow_id = client.register_workflow(wf)
    idle, busy = (wfrunner.start_run.delay(workflow_id, {}).get(timeout=30) for _ in "ab")
    rt = Runtime(Settings.from_env(engine_env))
    deadline = time.monotonic() + 20
    while not all(rt.redis.hkeys(keys.running_key(r)) for r in (idle, busy)):
        assert time.monotonic() < deadline, "the nodes never began"
        time.sleep(0.1)
    # both runs look idle for far longer than WFRUNNER_RUN_TIMEOUT, but only ``idle``
    # lost its node's lease
    database = sa.create_engine(engine_env["WFRUNNER_DATABASE_URL"])
    for run_id in (idle, busy):
        rt.redis.hset(keys.meta_key(run_id), "activity", 0)
        with database.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE runs SET last_activity_at = now() - interval '1 day' WHERE id = :id"
                ),
                {"id": run_id},
            )
    database.dispose()
    rt.redis.delete(keys.running_key(idle))
    try:
        failed = detect_timeouts.apply_async(ignore_result=False).get(timeout=30)
        assert idle in failed and busy not in failed
        timeout = Settings.from_env(engine_env).run_timeout
        assert client.get_run(idle)["error"] == (
            f"run timed out: no activity for {timeout} s (WFRUNNER_RUN_TIMEOUT)"
        )
        assert client.get_run(busy)["status"] == "RUNNING"
    finally:
        gates[gate].set()
        rt.close()
    assert client.wait_for_run(busy, timeout=30)["status"] == "COMPLETED"


def test_hundred_concurrent_diamonds_all_complete_with_each_join_once(worker: Any) -> None:
    wf = {
        "nodes": [fn("A"), fn("B"), fn("C"), fn("D", "t.count", tag="diamond")],
        "edges": edges(("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")),
    }
    workflow_id = client.register_workflow(wf)
    before = calls["t.count:diamond"]
    results = [wfrunner.start_run.delay(workflow_id, {"i": i}) for i in range(100)]
    run_ids = [r.get(timeout=60) for r in results]
    docs = [client.wait_for_run(run_id, timeout=120) for run_id in run_ids]
    not_completed = [
        (d["run_id"], d["status"], d["error"]) for d in docs if d["status"] != "COMPLETED"
    ]
    assert not_completed == []
    assert calls["t.count:diamond"] - before == 100
    assert all(d["nodes"]["D"]["attempts"] == 1 for d in docs)
    assert all(
        d["nodes"]["D"]["output"] == {"B": {"i": d["inputs"]["i"]}, "C": {"i": d["inputs"]["i"]}}
        for d in docs
    )


def test_a_runs_end_is_recorded_by_the_finisher_thread_after_its_task_returned(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task that brings the counter to 0 hands the run's end to its process's
    finisher thread and returns (wfrunner/tasks/finisher.py): the task is no longer
    active while the end is being recorded, and the run ends COMPLETED once it is."""
    from celery.worker import state as worker_state

    release = threading.Event()
    seen: dict[str, list[str]] = {}
    real = lifecycle.check_completion

    def held(rt: Runtime, run_id: str, view: Any = None) -> str:
        seen.setdefault(run_id, []).append(threading.current_thread().name)
        release.wait(30)
        return real(rt, run_id, view)

    monkeypatch.setattr(lifecycle, "check_completion", held)
    workflow_id = client.register_workflow(
        {"nodes": [fn("A"), fn("B")], "edges": edges(("A", "B"))}
    )
    run_id = wfrunner.start_run.delay(workflow_id, {}).get(timeout=30)
    deadline = time.monotonic() + 30
    while not seen.get(run_id) or any(r.id == run_id for r in worker_state.active_requests):
        assert time.monotonic() < deadline, "the task never returned with the end in hand"
        time.sleep(0.01)
    assert seen[run_id][0].startswith("wfrunner-finisher")
    assert client.get_run(run_id)["status"] == "RUNNING"  # the end is still in hand
    release.set()
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"


def test_an_end_the_finisher_cannot_record_is_checked_from_the_completion_queue(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An end the finisher thread fails to record (PostgreSQL or Redis away) sends the
    completion check to the completion queue, whose task ends the run."""
    seen: dict[str, list[str]] = {}
    real = lifecycle.check_completion

    def flaky(rt: Runtime, run_id: str, view: Any = None) -> str:
        seen.setdefault(run_id, []).append(threading.current_thread().name)
        if len(seen[run_id]) == 1:
            raise StoreError("cannot connect to PostgreSQL (the test's)")
        return real(rt, run_id, view)

    monkeypatch.setattr(lifecycle, "check_completion", flaky)
    workflow_id = client.register_workflow(
        {"nodes": [fn("A"), fn("B")], "edges": edges(("A", "B"))}
    )
    run_id = wfrunner.start_run.delay(workflow_id, {}).get(timeout=30)
    assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"
    first, *rest = seen[run_id]
    assert first.startswith("wfrunner-finisher")
    assert rest and not rest[0].startswith("wfrunner-finisher")  # the queued check's task
