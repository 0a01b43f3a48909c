"""Cron schedules on a real worker, Redis and PostgreSQL: the fire_schedules task (its
clock injected, not waited for) starts runs on the in-process worker; catch-up after a
downtime; each overlap policy against a run whose handler blocks; two ticks at once fire
a time once; a schedule another tick holds is passed over; a tick that dies after sending
starts no second run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e import handlers
from tests.e2e.test_approvals import until
from tests.entry_point import invoke
from wfrunner import client
from wfrunner.runtime import runtime
from wfrunner.schedules import firing
from wfrunner.schedules.firing import fire_due, run_id_of
from wfrunner.states import RunStatus
from wfrunner.store.schedules import ScheduleClaim
from wfrunner.tasks.config import COMPLETION_QUEUE
from wfrunner.tasks.schedules import fire_schedules

ROOT = Path(__file__).resolve().parents[2]

#: a fire time of the tests' */5 schedules; the tests' clock is injected from here on
BASE = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


@pytest.fixture(autouse=True)
def no_schedules(worker: Any) -> Iterator[None]:
    """Each test ticks only its own schedules (the database serves the whole session)."""
    _sql("DELETE FROM schedules")
    yield
    _sql("DELETE FROM schedules")


def _sql(statement: str, **params: Any) -> None:
    with runtime().store._engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def scheduled(
    schedule: dict[str, Any], first: dict[str, Any] | None = None, clock: datetime | None = None
) -> str:
    """Register a workflow A -> B with ``schedule``; its clock set to ``clock`` (default:
    just before BASE, as if it last fired at 11:55)."""
    name = f"sched-{uuid.uuid4().hex[:8]}"
    a = first or {"id": "A", "type": "function", "config": {"function_name": "t.increment"}}
    client.register_workflow(
        {
            "metadata": {"name": name},
            "nodes": [a, {"id": "B", "type": "transform", "config": {"expression": "input"}}],
            "edges": [{"from": "A", "to": "B"}],
            "schedule": {"cron": "*/5 * * * *", **schedule},
        }
    )
    _sql(
        "UPDATE schedules SET last_fired_at = :t WHERE name = :n",
        t=clock or at(-5),
        n=name,
    )
    return name


def blocking(gate: str) -> dict[str, Any]:
    return {"id": "A", "type": "function", "config": {"function_name": "t.wait", "gate": gate}}


def open_gate(gate: str) -> None:
    handlers.gates.setdefault(gate, threading.Event()).set()


def fires(name: str) -> list[tuple[str, str, int]]:
    """(fire time, status, missed) of the schedule's fires, oldest first."""
    found = runtime().store.list_fires(name, limit=500)
    return [(f.fire_time.strftime("%H:%M"), f.status, f.missed) for f in reversed(found)]


def wait_status(run_id: str, status: RunStatus) -> None:
    until(lambda: runtime().store.get_run(run_id).status is status, timeout=60)


def test_the_task_fires_a_due_time_and_the_worker_runs_it(worker: Any) -> None:
    name = scheduled({"inputs": {"x": 41}})
    result = fire_schedules(now=(at(0) + timedelta(seconds=2)).isoformat())
    run_id = run_id_of(name, at(0))
    assert result["started"] == {name: [run_id]}
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["inputs"] == {"x": 41} and doc["workflow_name"] == name
    assert doc["nodes"]["B"]["output"] == {"x": 42}  # t.increment ran on the worker

    again = fire_schedules(now=(at(0) + timedelta(seconds=7)).isoformat())
    assert name not in again.get("started", {})  # 12:00 was dealt with
    assert fires(name) == [("12:00", "started", 0)]
    record = runtime().store.get_schedule(name)
    assert record.last_fired_at == at(0) and record.next_fire_at == at(5)
    assert record.last_run_id == run_id

    # as beat sends it: a message the worker takes from the completion queue
    fire_schedules.apply_async(
        kwargs={"now": (at(5) + timedelta(seconds=1)).isoformat()}, queue=COMPLETION_QUEUE
    )
    until(lambda: runtime().store.get_schedule(name).last_fired_at == at(5))
    later = client.wait_for_run(run_id_of(name, at(5)), timeout=60)
    assert later["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("catch_up", "started", "recorded"),
    [
        ("none", [], [("12:00", "missed", 12)]),
        ("latest", [0], [("11:55", "missed", 11), ("12:00", "started", 0)]),
    ],
)
def test_catch_up_after_an_hour_down(
    worker: Any, catch_up: str, started: list[int], recorded: list[Any]
) -> None:
    now = at(2.5)  # last fired at 11:02:30: 11:05 ... 12:00 are due, 12:00 150 s ago
    name = scheduled({"catch_up": catch_up}, clock=now - timedelta(hours=1))
    report = fire_due(runtime(), now)
    assert report.started.get(name, []) == [run_id_of(name, at(m)) for m in started]
    assert fires(name) == recorded
    assert runtime().store.get_schedule(name).last_fired_at == at(0)
    for run_id in report.started.get(name, []):
        assert client.wait_for_run(run_id, timeout=60)["status"] == "COMPLETED"


def test_catch_up_all_runs_each_missed_time_one_after_the_other(worker: Any) -> None:
    now, gate = at(2.5), uuid.uuid4().hex
    name = scheduled(
        {"catch_up": "all", "overlap": "queue"}, blocking(gate), now - timedelta(minutes=33)
    )
    first = fire_due(runtime(), now)
    times = [at(m) for m in range(-30, 1, 5)]  # 11:30 ... 12:00: 7 times
    assert first.started[name] == [run_id_of(name, times[0])]
    assert first.waiting[name] == 6
    open_gate(gate)  # the first run blocked until all the others were waiting
    ran = [run_id_of(name, times[0])]
    for fire_time in times[1:]:  # each tick starts the next once the one before ended
        wait_status(ran[-1], RunStatus.COMPLETED)
        tick = fire_due(runtime(), now + timedelta(seconds=5))
        assert tick.started[name] == [run_id_of(name, fire_time)]
        ran.append(tick.started[name][0])
    wait_status(ran[-1], RunStatus.COMPLETED)
    assert [f[1] for f in fires(name)] == ["started"] * 7


def test_overlap_skip_records_a_skipped_fire(worker: Any) -> None:
    gate = uuid.uuid4().hex
    name = scheduled({"overlap": "skip"}, blocking(gate))
    first = fire_due(runtime(), at(0))
    run1 = first.started[name][0]
    until(lambda: handlers.calls[f"t.wait:{gate}"])  # its handler is blocked
    second = fire_due(runtime(), at(5))
    assert second.skipped == {name: 1} and name not in second.started
    assert fires(name) == [("12:00", "started", 0), ("12:05", "skipped", 0)]
    open_gate(gate)
    wait_status(run1, RunStatus.COMPLETED)
    third = fire_due(runtime(), at(10))
    assert third.started[name] == [run_id_of(name, at(10))]
    wait_status(third.started[name][0], RunStatus.COMPLETED)


def test_overlap_queue_starts_the_fire_when_the_previous_run_ends(worker: Any) -> None:
    gate = uuid.uuid4().hex
    name = scheduled({"overlap": "queue"}, blocking(gate))
    run1 = fire_due(runtime(), at(0)).started[name][0]
    until(lambda: handlers.calls[f"t.wait:{gate}"])
    assert fire_due(runtime(), at(5)).waiting == {name: 1}
    assert fire_due(runtime(), at(6)).started == {}  # still behind run 1
    assert fires(name)[-1] == ("12:05", "waiting", 0)
    open_gate(gate)
    wait_status(run1, RunStatus.COMPLETED)
    tick = fire_due(runtime(), at(7))
    assert tick.started == {name: [run_id_of(name, at(5))]}  # the 12:05 fire, late
    assert fires(name) == [("12:00", "started", 0), ("12:05", "started", 0)]
    wait_status(run_id_of(name, at(5)), RunStatus.COMPLETED)


def test_overlap_cancel_previous_cancels_then_starts(worker: Any) -> None:
    gate = uuid.uuid4().hex
    name = scheduled({"overlap": "cancel_previous"}, blocking(gate))
    run1 = fire_due(runtime(), at(0)).started[name][0]
    until(lambda: handlers.calls[f"t.wait:{gate}"])
    tick = fire_due(runtime(), at(5))
    run2 = run_id_of(name, at(5))
    assert tick.cancelled == {name: [run1]} and tick.started == {name: [run2]}
    wait_status(run1, RunStatus.CANCELLED)
    open_gate(gate)
    wait_status(run2, RunStatus.COMPLETED)
    assert runtime().store.list_fires(name)[0].detail == f"cancelled run {run1}"


def test_two_ticks_at_once_fire_a_time_once(worker: Any) -> None:
    names = [scheduled({}) for _ in range(3)]
    barrier = threading.Barrier(4)
    reports: list[firing.TickReport] = []

    def tick() -> None:
        barrier.wait()
        reports.append(fire_due(runtime(), at(0) + timedelta(seconds=1)))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for name in names:
        started = [r for report in reports for r in report.started.get(name, [])]
        assert started == [run_id_of(name, at(0))], name
        assert fires(name) == [("12:00", "started", 0)]
        wait_status(started[0], RunStatus.COMPLETED)


def test_a_schedule_another_tick_holds_is_passed_over(worker: Any) -> None:
    """The claim itself, made certain: while another transaction (a tick of another beat)
    holds the schedule's row, a tick neither fires nor waits for it; once it is free, the
    next tick fires the time, once."""
    name = scheduled({})
    ticks: list[firing.TickReport] = []
    with runtime().store._engine.begin() as other:
        other.execute(sa.text("SELECT 1 FROM schedules WHERE name = :n FOR UPDATE"), {"n": name})
        tick = threading.Thread(target=lambda: ticks.append(fire_due(runtime(), at(0))))
        tick.start()
        tick.join(15)
        waited = tick.is_alive()  # (without the claim: blocked on the row until released)
    tick.join(15)
    assert not waited, "the tick waited for a schedule another tick held"
    assert ticks[0].held_elsewhere == [name] and not ticks[0].started
    assert fires(name) == []
    again = fire_due(runtime(), at(0) + timedelta(seconds=5))
    assert again.started == {name: [run_id_of(name, at(0))]}
    assert fires(name) == [("12:00", "started", 0)]
    wait_status(run_id_of(name, at(0)), RunStatus.COMPLETED)


def test_a_tick_that_dies_after_sending_starts_no_second_run(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = scheduled({})
    real = ScheduleClaim.advance

    def dies(self: ScheduleClaim, *args: Any) -> None:
        if self.schedule.name == name:
            raise RuntimeError("the tick's worker died here")
        real(self, *args)

    monkeypatch.setattr(ScheduleClaim, "advance", dies)
    other = scheduled({})  # another schedule of the same tick still fires
    died = fire_due(runtime(), at(0))
    assert died.failed == {name: "RuntimeError: the tick's worker died here"}
    assert died.started[other] == [run_id_of(other, at(0))]
    assert fires(other) == [("12:00", "started", 0)]
    monkeypatch.setattr(ScheduleClaim, "advance", real)
    run_id = run_id_of(name, at(0))
    wait_status(run_id, RunStatus.COMPLETED)  # the start was sent before the tick died
    assert fires(name) == []  # and nothing of the tick was recorded
    again = fire_due(runtime(), at(0) + timedelta(seconds=5))
    assert again.started == {name: [run_id]}  # the same fire, the same run: not started anew
    workflow_id = runtime().store.get_schedule(name).workflow_id
    assert [r.run_id for r in client.list_runs(workflow_id).items] == [run_id]
    assert client.get_run(run_id)["stats"]["nodes_executed"] == 2


def test_registration_updates_pauses_and_removes_the_schedule(worker: Any) -> None:
    name = scheduled({"inputs": {"v": 1}})
    runtime().store.set_schedule_paused(name, True, at(0))
    assert fire_due(runtime(), at(0)).started == {}  # paused: nothing fires
    flow = {
        "metadata": {"name": name},
        "nodes": [{"id": "B", "type": "transform", "config": {"expression": "input"}}],
        "edges": [],
    }
    v2 = client.register_workflow({**flow, "schedule": {"cron": "0 * * * *", "inputs": {"v": 2}}})
    record = runtime().store.get_schedule(name)
    assert record.workflow_id == v2 and record.spec["cron"] == "0 * * * *"
    assert record.paused  # an operator's pause outlives a new version
    env = {
        **os.environ,
        "WFRUNNER_REDIS_URL": runtime().redis_url,
        "WFRUNNER_DATABASE_URL": runtime().database_url,
    }
    resumed = invoke("schedules", "resume", name, env=env)
    assert resumed.returncode == 0 and resumed.stdout == f"schedule {name}: active\n"
    listed = invoke("schedules", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert f"{name}@2" in row and "0 * * * * UTC" in row and "active" in row
    assert "overlap=skip catch_up=none" in row
    fired = invoke("schedules", "fire", name, env=env)
    assert fired.returncode == 0, fired.stderr
    doc = client.wait_for_run(fired.stdout.strip(), timeout=60)
    assert (doc["inputs"], doc["workflow_id"]) == ({"v": 2}, v2)

    history = invoke("schedules", "history", name, env=env)
    assert history.returncode == 0, history.stderr
    assert history.stdout.split()[:4] == ["fire", "time", "status", "run"]
    assert fired.stdout.strip() in history.stdout and "started" in history.stdout

    missing = invoke("schedules", "pause", f"no-{name}", env=env)
    assert missing.returncode == 2
    assert f"no schedule for a workflow named 'no-{name}' (schedules: {name})" in missing.stderr

    client.register_workflow(flow)  # the latest version has no schedule: it is removed
    assert invoke("schedules", "--json", env=env).stdout.strip() == "[]"


def test_api_lists_pauses_and_resumes(api: Any) -> None:
    name = scheduled({"overlap": "queue", "catch_up": "latest", "timezone": "Europe/Paris"})
    listed = api.get("/schedules")
    assert listed.status_code == 200
    (item,) = [s for s in listed.json()["items"] if s["name"] == name]
    assert (item["cron"], item["timezone"], item["overlap"], item["catch_up"]) == (
        "*/5 * * * *",
        "Europe/Paris",
        "queue",
        "latest",
    )
    assert item["state"] == "active" and item["version"] == 1
    paused = api.post(f"/schedules/{name}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert paused.json()["next_fire_at"] is None
    resumed = api.post(f"/schedules/{name}/resume").json()
    assert resumed["state"] == "active" and resumed["next_fire_at"] is not None
    assert api.post("/schedules/nope/pause").status_code == 404
    bad = api.post(
        "/workflows",
        json={
            "nodes": [{"id": "B", "type": "transform", "config": {"expression": "1"}}],
            "edges": [],
            "schedule": {"cron": "61 * * * *", "catch_up": "sometimes"},
        },
    )
    assert bad.status_code == 422
    messages = " | ".join(str(d) for d in bad.json()["detail"])
    assert "'61 * * * *' is not a cron text" in messages and "catch_up" in messages


@pytest.fixture()
def beat_and_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """``celery -A wfrunner beat`` ticking every second, and a worker subprocess on both
    queues (on the Redis database after the tests': the in-process worker never sees
    their messages)."""
    env = {**worker_env, "WFRUNNER_SCHEDULE_INTERVAL": "1"}
    base = [sys.executable, "-m", "celery", "-A", "wfrunner"]
    started = [
        subprocess.Popen(
            [
                *base,
                "worker",
                "-Q",
                "wfrunner.tasks,wfrunner.completion",
                "-c",
                "1",
                "-n",
                "sched-test@%h",
                "--loglevel=WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [*base, "beat", "-s", str(tmp_path / "beat-schedule"), "--loglevel=WARNING"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        yield env
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            proc.wait(30)


def test_celery_beat_fires_a_schedule_on_a_worker(beat_and_worker: dict[str, str]) -> None:
    """No injected clock: the real beat sends the tick, a real worker fires the schedule
    and runs the run (catch_up latest: the latest minute missed since 3 minutes ago)."""
    now = datetime.now(UTC)
    name = scheduled(
        {"cron": "* * * * *", "catch_up": "latest", "inputs": {"x": 1}},
        {"id": "A", "type": "transform", "config": {"expression": "input"}},
        clock=now - timedelta(minutes=3),
    )
    store = runtime().store

    def fired() -> str | None:
        return store.get_schedule(name).last_run_id

    run_id = until(fired, timeout=90)
    latest = store.list_fires(name)[0]
    assert latest.status == "started" and latest.run_id == run_id
    assert run_id == run_id_of(name, latest.fire_time)
    assert latest.fire_time >= (now - timedelta(minutes=1)).replace(second=0, microsecond=0)
    wait_status(run_id, RunStatus.COMPLETED)
