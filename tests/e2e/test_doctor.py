"""``wfrunner doctor`` on a real worker, Redis and PostgreSQL: each stuck (or waiting)
situation made for real, named by the diagnosis, and unstuck by the repair it calls for
(the run then completes on the worker). No celery beat runs here: nothing but the
repair moves a stuck run."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import wfrunner
from tests.brokers import redis_broker_only
from tests.e2e.handlers import gates
from tests.e2e.waiting import until
from tests.entry_point import invoke
from tests.http_server import serving
from wfrunner import client, lifecycle, recovery
from wfrunner.doctor import broker, diagnose
from wfrunner.engine import keys
from wfrunner.runtime import Runtime, runtime
from wfrunner.settings import Settings
from wfrunner.tasks.execution import execute_node

#: a queue no worker consumes
NOWHERE = "wfrunner.nowhere"


def fn(node_id: str, name: str = "t.increment", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def ended(run_id: str, timeout: float = 60) -> str:
    doc = client.wait_for_run(run_id, timeout=timeout)
    return str(doc["status"])


def leased(run_id: str) -> bool:
    return bool(runtime().redis.hlen(keys.running_key(run_id)))


@pytest.fixture()
def quick_rt(worker: Any) -> Iterator[Runtime]:
    """The engine's runtime with the reconciler's stall threshold at 3 s (interval 1 s)."""
    rt = Runtime(dataclasses.replace(Settings.from_env(), reconcile_interval=1))
    yield rt
    rt.close()


@pytest.fixture()
def cli_env(worker: Any) -> dict[str, str]:
    """The environment of a ``wfrunner`` command on the worker's servers."""
    return {**os.environ, "WFRUNNER_RECONCILE_INTERVAL": "1"}


@pytest.fixture(scope="module")
def api(worker: Any) -> Iterator[httpx.Client]:
    rt = Runtime(Settings.from_env())
    with serving(rt) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http
    rt.close()


def start(definition: dict[str, Any], inputs: Any = None) -> str:
    workflow_id = client.register_workflow(definition)
    return str(wfrunner.start_run.delay(workflow_id, inputs or {}).get(timeout=30))


def kinds(run_id: str, rt: Runtime | None = None) -> list[str]:
    return [f.kind for f in diagnose(run_id, rt).findings]


@redis_broker_only("it reads the message back from kombu's Redis queue list")
def test_a_message_on_a_queue_no_worker_consumes_is_lost_and_requeue_completes_the_run(
    quick_rt: Runtime, cli_env: dict[str, str]
) -> None:
    rt = runtime()
    # an earlier test's reconciler or detector pass (the same Redis database) would say beat ran
    rt.redis.delete(keys.PASSES_KEY)
    definition = {"nodes": [fn("A"), fn("B")], "edges": [{"from": "A", "to": "B"}]}
    workflow_id = client.register_workflow(definition)
    run = rt.store.create_run(workflow_id, {"n": 1}, 1)
    entries = lifecycle.start(rt, run.id, workflow_id, {"n": 1})
    for token in entries:  # published where no worker looks
        execute_node.apply_async(args=[run.id, workflow_id, token.to_dict()], queue=NOWHERE)
    try:
        waiting = broker.read(rt.redis, (NOWHERE,))  # the broker reads the message it holds
        mine = {k: v for k, v in waiting.messages.items() if k in {t.key for t in entries}}
        assert mine == {t.key: "queued" for t in entries} and waiting.complete
        time.sleep(3.5)  # the reconciler's stall threshold (3 x its 1 s interval)
        found = diagnose(run.id, quick_rt)
        assert found.stuck and found.action == "requeue", found
        lost = found.findings[0]
        assert lost.kind == "lost_message" and lost.node == "A"
        assert "no message for it is in the broker" in lost.summary

        shown = invoke("doctor", run.id, env=cli_env)
        assert shown.returncode == 1, shown.stderr
        assert "lost_message" in shown.stdout and "--repair requeue" in shown.stdout
        assert "never ran on this Redis" in shown.stdout  # no celery beat here

        recent = invoke("doctor", run.id, "--older-than", "3600", "--json", env=cli_env)
        assert recent.returncode == 0 and json.loads(recent.stdout)["runs"] == []

        fixed = invoke("doctor", run.id, "--repair", "requeue", "--json", env=cli_env)
        assert fixed.returncode == 0, fixed.stderr
        assert json.loads(fixed.stdout)[0]["tokens"] == ["A"]
        assert ended(run.id) == "COMPLETED"
    finally:
        rt.redis.delete(NOWHERE)
    trace = invoke("trace", run.id, env=cli_env)
    assert "reconciler_repaired" in trace.stdout
    assert "republished 1 token at" in trace.stdout and "no worker took it for" in trace.stdout
    done = invoke("doctor", run.id, env=cli_env)
    assert done.returncode == 0 and "not stuck: it ended COMPLETED" in done.stdout
    again = invoke("doctor", run.id, "--repair", "requeue", env=cli_env)
    assert again.returncode == 2 and "has ended (COMPLETED)" in again.stderr


def test_an_approval_is_waiting_not_stuck(worker: Any, cli_env: dict[str, str]) -> None:
    run_id = start(
        {
            "nodes": [fn("A"), {"id": "gate", "type": "human", "config": {"prompt": "ok?"}}],
            "edges": [{"from": "A", "to": "gate"}],
        }
    )
    until(lambda: client.get_run(run_id)["nodes"]["gate"]["status"] == "WAITING")
    found = diagnose(run_id)
    assert not found.stuck
    waiting = [f for f in found.findings if f.kind == "waiting_approval"]
    assert waiting and waiting[0].node == "gate"
    assert f"wfrunner approve {run_id} gate" in waiting[0].summary
    assert "(no deadline)" in waiting[0].summary
    shown = invoke("doctor", run_id, "--json", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["stuck"] == 0
    wfrunner.approve(run_id, "gate")
    assert ended(run_id) == "COMPLETED"


def test_a_join_whose_other_branch_blocks_names_what_it_waits_for(worker: Any) -> None:
    gate = "doctor-join"
    gates[gate] = threading.Event()
    run_id = start(
        {
            "nodes": [
                fn("A"),
                fn("B", "t.wait", gate=gate),
                fn("C"),
                {"id": "J", "type": "transform", "config": {"expression": "input"}},
            ],
            "edges": [
                {"from": "A", "to": "B"},
                {"from": "A", "to": "C"},
                {"from": "B", "to": "J"},
                {"from": "C", "to": "J"},
            ],
        }
    )
    try:

        def join_waits() -> Any:
            found = diagnose(run_id)
            return next((f for f in found.findings if f.kind == "waiting_join"), None)

        join = until(join_waits)
        assert join.node == "J" and join.details["arrived"] == ["C"]
        assert join.details["missing"]["B"]["state"] == "running"
        assert "waits for B: running (task" in join.summary
        assert not diagnose(run_id).stuck
    finally:
        gates[gate].set()
    assert ended(run_id) == "COMPLETED"


def test_lost_hot_state_is_named_and_rebuilt_over_http(api: httpx.Client) -> None:
    gate = "doctor-rebuild"
    gates[gate] = threading.Event()
    rt = runtime()
    run_id = start(
        {"nodes": [fn("A", "t.wait", gate=gate), fn("B")], "edges": [{"from": "A", "to": "B"}]}
    )
    until(lambda: leased(run_id))
    recovery.flush(rt, run_id)
    rt.redis.delete(*keys.run_keys(run_id))  # Redis lost the run
    gates[gate].set()  # the delivery running A goes on: its commit finds no run

    shown = api.get(f"/runs/{run_id}/diagnosis")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["stuck"] and body["suggested_action"] == "rebuild"
    assert body["findings"][0]["kind"] == "hot_state_lost"
    listed = api.get("/diagnosis").json()
    assert run_id in [d["run_id"] for d in listed["runs"]] and listed["stuck"] >= 1

    repaired = api.post(f"/runs/{run_id}/repair", json={"action": "rebuild", "by": "ops"})
    assert repaired.status_code == 200, repaired.text
    assert repaired.json()["tokens"] == ["A"]
    assert ended(run_id) == "COMPLETED"
    events = [e for e in client.run_events(rt.store.get_run(run_id), rt)]
    recovered = [e for e in events if e["type"] == "run_recovered"]
    assert recovered and recovered[0]["by"] == "doctor (ops)"
    assert "rebuilt by ops (wfrunner doctor)" in recovered[0]["why"]

    again = api.post(f"/runs/{run_id}/repair", json={"action": "requeue"})
    assert again.status_code == 409
    assert api.get("/runs/nope/diagnosis").status_code == 404
    assert api.post("/runs/nope/repair", json={"action": "fail"}).status_code == 404
    assert api.post(f"/runs/{run_id}/repair", json={"action": "explode"}).status_code == 422


def test_fail_and_cancel_end_a_stuck_run_with_the_reason(worker: Any) -> None:
    from wfrunner.doctor import repair

    rt = runtime()
    definition = {"nodes": [fn("A")], "edges": []}
    workflow_id = client.register_workflow(definition)
    runs = []
    for _ in range(2):
        run = rt.store.create_run(workflow_id, {}, 1)
        lifecycle.start(rt, run.id, workflow_id, {})  # its entry token never published
        runs.append(run.id)
    failed = repair(runs[0], "fail", reason="no longer needed", by="ops")
    assert failed.status == "FAILED"
    assert rt.store.get_run(runs[0]).error == "failed by ops (wfrunner doctor): no longer needed"
    cancelled = repair(runs[1], "cancel", by="ops")
    assert cancelled.status == "CANCELLED"
    assert "cancelled by ops" in str(rt.store.get_run(runs[1]).error)
    assert not diagnose(runs[0]).stuck


def test_bad_input_is_a_usage_error_naming_it(cli_env: dict[str, str]) -> None:
    unknown = invoke("doctor", "no-such-run", env=cli_env)
    assert unknown.returncode == 2 and "no run with id 'no-such-run'" in unknown.stderr
    nothing = invoke("doctor", "--repair", "requeue", env=cli_env)
    assert nothing.returncode == 2 and "name the runs to repair" in nothing.stderr
    odd = invoke("doctor", "some-run", "--repair", "explode", env=cli_env)
    assert odd.returncode == 2 and "--repair" in odd.stderr
    negative = invoke("doctor", "--older-than", "-5", env=cli_env)
    assert negative.returncode == 2 and "--older-than" in negative.stderr
    assert "Traceback" not in unknown.stderr + nothing.stderr + odd.stderr + negative.stderr


def test_a_subworkflow_node_waits_for_its_child_which_doctor_diagnoses_in_turn(
    worker: Any,
) -> None:
    gate = "doctor-child"
    gates[gate] = threading.Event()
    client.register_workflow(
        {"metadata": {"name": "doctor-child"}, "nodes": [fn("C", "t.wait", gate=gate)], "edges": []}
    )
    run_id = start(
        {
            "nodes": [
                fn("P"),
                {"id": "S", "type": "subworkflow", "config": {"workflow": "doctor-child"}},
            ],
            "edges": [{"from": "P", "to": "S"}],
        }
    )
    try:

        def child_waited() -> Any:
            found = diagnose(run_id).findings
            return next(
                (
                    f
                    for f in found
                    if f.kind == "waiting_child" and f.details["child_status"] == "RUNNING"
                ),
                None,
            )

        waiting = until(child_waited)
        assert waiting.node == "S" and not diagnose(run_id).stuck
        child = waiting.details["child_run_id"]
        assert f"waits for its child run {child} (RUNNING" in waiting.summary
        until(lambda: "running" in kinds(child))
    finally:
        gates[gate].set()
    assert ended(run_id) == "COMPLETED"
