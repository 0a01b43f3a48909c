"""Concurrency limits on a real worker, Redis and PostgreSQL: a workflow's run limit
(N running, the rest QUEUED and started first come first served, a cancelled queued run
never starting) and a handler's fleet-wide limit (never more bodies inside it than its
slots, a put-off delivery not counted as an attempt, no slot leaked)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import wfrunner
from tests.e2e.limit_handlers import gate
from tests.e2e.waiting import until
from tests.harness import redis_seen_as
from tests.http_server import serving
from wfrunner import client, recovery, runlimits, waits
from wfrunner.cli import limits as _limits_command  # noqa: F401  (registers it)
from wfrunner.cli import show as _show_command  # noqa: F401
from wfrunner.cli.app import cli
from wfrunner.engine import handler_slots, keys
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime, runtime
from wfrunner.settings import Settings
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus
from wfrunner.tasks.runs import reconcile


def limited(name: str, max_runs: int) -> dict[str, Any]:
    """hold (waits for the gate its input names) -> done."""
    return {
        "metadata": {"name": name},
        "concurrency": {"max_runs": max_runs},
        "nodes": [
            {"id": "hold", "type": "function", "config": {"function_name": "limits.hold"}},
            {"id": "done", "type": "transform", "config": {"expression": "input.gate"}},
        ],
        "edges": [{"from": "hold", "to": "done"}],
    }


def statuses(run_ids: list[str]) -> dict[str, RunStatus]:
    return runtime().store.statuses_of(run_ids)


class Sampler:
    """Samples the runs' PostgreSQL statuses in a thread; the most seen active at once."""

    def __init__(self, run_ids: list[str]) -> None:
        self.run_ids = run_ids
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            found = statuses(list(self.run_ids))
            active = [s for s in found.values() if s in (RunStatus.RUNNING, RunStatus.WAITING)]
            self.most = max(self.most, len(active))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def submit(workflow_id: str, tag: str) -> str:
    run_id = client.submit_run(workflow_id, {"gate": tag})
    time.sleep(0.01)  # distinct submission times
    return run_id


def status_is(run_id: str, status: RunStatus) -> Callable[[], bool]:
    return lambda: runtime().store.get_run(run_id).status is status


@pytest.fixture()
def opened() -> Iterator[list[str]]:
    """Gates the test names; all opened at its end, so no handler stays blocked."""
    names: list[str] = []
    yield names
    for name in names:
        gate(name).set()


def test_n_runs_run_the_rest_wait_queued_and_start_in_order(worker: Any, opened: list[str]) -> None:
    name = f"etl-{uuid.uuid4().hex[:8]}"
    workflow_id = client.register_workflow(limited(name, 2))
    tags = [f"{name}-{i}" for i in range(5)]
    opened += tags
    rt = runtime()
    runs = [submit(workflow_id, tag) for tag in tags[:4]]
    with Sampler(runs) as sampler:
        until(lambda: statuses(runs[:2]) == {r: RunStatus.RUNNING for r in runs[:2]})
        until(lambda: client.get_run(runs[3]).get("queued_position") == 2)
        doc = client.get_run(runs[2])
        assert doc["status"] == "QUEUED"
        assert doc["queued_position"] == 1
        assert doc["waiting_for"] == (
            f"waiting for a slot: 2 of 2 runs of {name!r} running; 1st in the queue"
        )
        queued = client.list_runs(workflow_id, status="QUEUED")  # wfrunner runs --status
        assert {r.run_id for r in queued.items} == set(runs[2:4])
        # a start delivered again takes no second slot
        wfrunner.start_run.apply_async(args=[workflow_id], kwargs={"inputs": {}}, task_id=runs[0])
        wfrunner.start_run.apply_async(
            args=[workflow_id], kwargs={"inputs": {"gate": tags[2]}}, task_id=runs[2]
        )
        time.sleep(1.0)
        usage = runlimits.slots(rt).usage(name)
        assert set(usage.running) == set(runs[:2])
        assert list(usage.queued) == runs[2:4]
        assert client.get_run(runs[2])["status"] == "QUEUED"

        # the first run ends: the oldest queued run (not the newest) takes its slot
        gate(tags[0]).set()
        assert client.wait_for_run(runs[0], timeout=30)["status"] == "COMPLETED"
        until(status_is(runs[2], RunStatus.RUNNING))
        assert client.get_run(runs[3])["queued_position"] == 1

        # a cancelled queued run leaves the queue and never starts
        cancelled = wfrunner.cancel_run(runs[3], "not needed")
        assert cancelled["status"] == "CANCELLED"
        runs.append(submit(workflow_id, tags[4]))
        until(status_is(runs[4], RunStatus.QUEUED))
        # (QUEUED is recorded before its start_run task queues it for a slot)
        until(lambda: list(runlimits.slots(rt).usage(name).queued) == [runs[4]])
        gate(tags[1]).set()
        until(status_is(runs[4], RunStatus.RUNNING))
        gate(tags[2]).set()
        gate(tags[4]).set()
        for run_id in (runs[1], runs[2], runs[4]):
            assert client.wait_for_run(run_id, timeout=30)["status"] == "COMPLETED"
    assert sampler.most == 2
    records = {r: rt.store.get_run(r) for r in runs}
    assert records[runs[3]].status is RunStatus.CANCELLED
    assert records[runs[3]].started_at is None
    assert rt.store.list_events(runs[3]) == []
    started = [records[r].started_at for r in (runs[0], runs[1], runs[2], runs[4])]
    assert all(s is not None for s in started)
    assert max(started[:2]) < started[2] < started[3]  # type: ignore[operator]
    usage = runlimits.slots(rt).usage(name)
    assert (usage.running, usage.queued, usage.max_runs) == ((), (), 2)


def test_a_slot_left_by_an_ended_run_is_freed_by_the_reconciler(
    worker: Any, opened: list[str]
) -> None:
    """A worker died between recording a run's end and freeing its slot: the reconciler
    sees the holder ended in PostgreSQL, frees the slot and starts the next queued run."""
    name = f"etl-{uuid.uuid4().hex[:8]}"
    workflow_id = client.register_workflow(limited(name, 1))
    tags = [f"{name}-{i}" for i in range(2)]
    opened += tags
    rt = runtime()
    gate(tags[0]).set()
    first = submit(workflow_id, tags[0])
    assert client.wait_for_run(first, timeout=30)["status"] == "COMPLETED"
    store = runlimits.slots(rt)
    slots_key = runlimits.workflow_keys(name)[0]
    until(lambda: store.usage(name).running == ())  # released just after the end is recorded
    rt.redis.sadd(slots_key, first)  # as if its release never ran
    second = submit(workflow_id, tags[1])
    until(lambda: client.get_run(second).get("queued_position") == 1)
    time.sleep(0.5)
    assert rt.store.get_run(second).status is RunStatus.QUEUED
    assert runlimits.repair(rt) == 1
    until(status_is(second, RunStatus.RUNNING))
    assert set(store.usage(name).running) == {second}
    gate(tags[1]).set()
    assert client.wait_for_run(second, timeout=30)["status"] == "COMPLETED"
    until(lambda: store.usage(name).running == ())


def charging(key: str, seconds: float = 0.6) -> dict[str, Any]:
    """start -> three parallel calls of the limited handler -> join."""
    call = {"function_name": "limits.charge", "key": key, "seconds": seconds}
    return {
        "metadata": {"name": "charges"},
        "nodes": [
            {"id": "start", "type": "transform", "config": {"expression": "input"}},
            *({"id": f"c{i}", "type": "function", "config": call} for i in range(3)),
            {"id": "all", "type": "aggregate", "config": {"strategy": "concat"}},
        ],
        "edges": [
            *({"from": "start", "to": f"c{i}"} for i in range(3)),
            *({"from": f"c{i}", "to": "all"} for i in range(3)),
        ],
    }


def test_a_handler_limit_holds_across_runs_and_waiting_is_no_attempt(worker: Any) -> None:
    key = f"limits:charge:{uuid.uuid4().hex[:8]}"
    workflow_id = client.register_workflow(charging(key))
    rt = runtime()
    runs = [client.submit_run(workflow_id, {"n": i}) for i in range(2)]
    seen_waiting: list[dict[str, Any]] = []

    def waiting_node() -> bool:
        for run_id in runs:
            for info in client.get_run(run_id)["nodes"].values():
                if info.get("waiting_for"):
                    seen_waiting.append(info)
                    return True
        return False

    until(waiting_node)
    docs = [client.wait_for_run(r, timeout=60) for r in runs]
    assert [d["status"] for d in docs] == ["COMPLETED", "COMPLETED"]
    seen = [int(v) for v in rt.redis.lrange(f"{key}:seen", 0, -1)]
    assert len(seen) == 6
    assert max(seen) == 2  # never more than two bodies inside the handler at once
    for doc in docs:
        for node in ("c0", "c1", "c2"):
            assert doc["nodes"][node]["attempts"] == 1  # waiting for a slot is no attempt
    assert seen_waiting[0]["status"] == "PENDING"
    assert seen_waiting[0]["waiting_for"] == "handler 'limits.charge' slots (2 of 2 busy)"
    slots_key = handler_slots.handler_keys("limits.charge")[0]
    assert rt.redis.zcard(slots_key) == 0  # every slot given back
    listed = {h["handler"]: h for h in waits.limits(rt)["handlers"]}
    assert listed["limits.charge"] == {
        "handler": "limits.charge",
        "max_concurrency": 2,
        "busy": 0,
    }


def test_a_copy_delivered_while_the_node_runs_leaks_no_slot(worker: Any, opened: list[str]) -> None:
    """A second delivery of a token whose node runs (the broker gave it out again) takes a
    slot, finds the lease held, and gives the slot back at once."""
    key = f"limits:charge:{uuid.uuid4().hex[:8]}"
    definition = {
        "nodes": [
            {
                "id": "c",
                "type": "function",
                "config": {"function_name": "limits.charge", "key": key, "seconds": 3},
            }
        ],
        "edges": [],
    }
    workflow_id = client.register_workflow(definition)
    rt = runtime()
    run_id = client.submit_run(workflow_id, {})
    slots_key = handler_slots.handler_keys("limits.charge")[0]
    until(lambda: rt.redis.get(key) == "1")
    assert rt.redis.zcard(slots_key) == 1
    (raw,) = rt.redis.hvals(keys.pending_key(run_id))
    token = Token.from_dict(json.loads(raw))
    outcome = rt.executor.process(rt.ir(workflow_id), token, nonce="a-copy")
    assert outcome.ignored is not None and "another delivery is running it" in outcome.ignored
    assert rt.redis.zcard(slots_key) == 1  # the copy's slot is given back
    doc = client.wait_for_run(run_id, timeout=30)
    assert doc["status"] == "COMPLETED" and doc["nodes"]["c"]["attempts"] == 1
    assert rt.redis.zcard(slots_key) == 0


def test_limits_listing_shows_running_and_queued(worker: Any, opened: list[str]) -> None:
    """``waits.limits`` (``wfrunner limits --json``), ``GET /limits`` and the CLI's lines."""
    name = f"etl-{uuid.uuid4().hex[:8]}"
    workflow_id = client.register_workflow(limited(name, 1))
    tags = [f"{name}-{i}" for i in range(2)]
    opened += tags
    runs = [submit(workflow_id, tag) for tag in tags]
    until(lambda: client.get_run(runs[1]).get("queued_position") == 1)
    expected = {
        "workflow": name,
        "max_runs": 1,
        "running": 1,
        "queued": 1,
        "running_runs": [runs[0]],
        "queued_runs": [runs[1]],
    }
    listed = {w["workflow"]: w for w in waits.limits(runtime())["workflows"]}
    assert listed[name] == expected
    rt = Runtime(dataclasses.replace(Settings.from_env(), api_token="limits-token"))
    with (
        serving(rt) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer limits-token"}) as api,
    ):
        reply = api.get("/limits")
        assert reply.status_code == 200
        served = {w["workflow"]: w for w in reply.json()["workflows"]}
        assert served[name] == expected
        assert api.get("/limits", headers={"Authorization": "Bearer wrong"}).status_code == 401
    rt.close()
    status = CliRunner().invoke(cli, ["status", runs[1]])
    assert "status    QUEUED\n" in status.output
    assert f"reason    waiting for a slot: 1 of 1 runs of {name!r} running; 1st in" in (
        status.output
    )
    shown = CliRunner().invoke(cli, ["limits"])
    assert shown.exit_code == 0, shown.output
    assert f"workflow {name}: 1 of 1 runs running, 1 queued\n    next: {runs[1]}\n" in (
        shown.output
    )
    for tag in tags:
        gate(tag).set()
    for run_id in runs:
        assert client.wait_for_run(run_id, timeout=30)["status"] in TERMINAL_RUN_STATES


def test_a_run_rebuilt_after_redis_lost_it_takes_back_its_slot(
    worker: Any, opened: list[str]
) -> None:
    """Redis loses a running run and its workflow's slots: the reconciler rebuilds the run
    from PostgreSQL and it holds its slot again, so the queued run still waits."""
    name = f"etl-{uuid.uuid4().hex[:8]}"
    workflow_id = client.register_workflow(limited(name, 1))
    tags = [f"{name}-{i}" for i in range(2)]
    opened += tags
    rt = runtime()
    runs = [submit(workflow_id, tag) for tag in tags]
    until(lambda: client.get_run(runs[1]).get("queued_position") == 1)
    until(lambda: rt.store.get_run(runs[0]).status is RunStatus.RUNNING)
    # as a Redis restarted empty would (the reconciler's next pass sees a new server)
    rt.redis.delete(*keys.run_keys(runs[0]), *runlimits.workflow_keys(name))
    redis_seen_as(rt, None)
    reconcile()  # rebuilds the running run (and publishes its token again)
    assert runlimits.slots(rt).usage(name).running == (runs[0],)
    assert recovery._start_lost(rt, 0.0) == {}  # the queued run's start: it queues again
    assert runlimits.slots(rt).usage(name).queued == (runs[1],)
    assert rt.store.get_run(runs[1]).status is RunStatus.QUEUED
    gate(tags[0]).set()
    assert client.wait_for_run(runs[0], timeout=60)["status"] == "COMPLETED"
    gate(tags[1]).set()
    assert client.wait_for_run(runs[1], timeout=60)["status"] == "COMPLETED"
