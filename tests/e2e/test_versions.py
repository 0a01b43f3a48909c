"""Workflow versions on a real worker, Redis and PostgreSQL: a run named by name, name@N or
name and version; a run keeps the version it started with while a newer one is
registered; the run document, the CLI and the API show name and version."""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any

import pytest

import wfrunner
from tests.e2e import handlers
from tests.e2e.test_approvals import until
from tests.entry_point import invoke
from wfrunner import client
from wfrunner.errors import NotFoundError, WorkflowError
from wfrunner.runtime import runtime


def flow(name: str, last: str, first: dict[str, Any] | None = None) -> dict[str, Any]:
    """A -> ``last``, ``last`` returning its own name: which graph ran shows in the path."""
    a = first or {"id": "A", "type": "function", "config": {"function_name": "t.increment"}}
    return {
        "metadata": {"name": name},
        "nodes": [a, {"id": last, "type": "transform", "config": {"expression": f'"{last}"'}}],
        "edges": [{"from": "A", "to": last}],
    }


def started(workflow: str, inputs: Any = None, **kwargs: Any) -> str:
    return str(wfrunner.start_run.delay(workflow, inputs, **kwargs).get(timeout=30))


def test_a_running_run_keeps_its_version_while_a_new_one_is_registered(worker: Any) -> None:
    name, gate = f"pinned-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    blocking = {"id": "A", "type": "function", "config": {"function_name": "t.wait", "gate": gate}}
    v1 = client.register_workflow(flow(name, "B", blocking))
    first = started(name, {"n": 1})  # by name: the latest version, v1
    until(lambda: handlers.calls[f"t.wait:{gate}"])  # A is running v1's handler

    v2 = client.register_workflow(flow(name, "C"))
    assert v2 != v1
    second = started(name, {"n": 2})  # the latest version now: v2
    done = client.wait_for_run(second, timeout=60)
    assert done["status"] == "COMPLETED", done["error"]
    assert (done["workflow_id"], done["workflow_version"], done["workflow_name"]) == (v2, 2, name)
    assert [p["to"] for p in done["path"]] == ["A", "C"]

    handlers.gates.setdefault(gate, threading.Event()).set()
    doc = client.wait_for_run(first, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert (doc["workflow_id"], doc["workflow_version"]) == (v1, 1)
    assert [p["to"] for p in doc["path"]] == ["A", "B"]  # v1's graph to its end
    assert set(doc["nodes"]) == {"A", "B"} and doc["nodes"]["B"]["output"] == "B"


def test_a_run_names_its_workflow_by_id_name_or_version(worker: Any) -> None:
    name = f"named-{uuid.uuid4().hex[:8]}"
    v1 = client.register_workflow(flow(name, "B"))
    v2 = client.register_workflow(flow(name, "C"))
    for args, kwargs, expected in [
        ((v1,), {}, v1),
        ((name,), {}, v2),
        ((f"{name}@1",), {}, v1),
        ((name,), {"version": 1}, v1),
        ((f"{name}@2",), {"version": 2}, v2),
    ]:
        doc = client.wait_for_run(started(*args, **kwargs), timeout=60)
        assert doc["workflow_id"] == expected, (args, kwargs)
        assert doc.workflow_name == name and doc.status == "COMPLETED"
    by_submit = client.submit_run(name, {}, version=1)
    assert client.wait_for_run(by_submit, timeout=60)["workflow_id"] == v1


def test_unknown_names_and_versions_say_what_exists(worker: Any) -> None:
    name = f"known-{uuid.uuid4().hex[:8]}"
    client.register_workflow(flow(name, "B"))
    client.register_workflow(flow(name, "C"))
    client.register_workflow(flow(name, "D"))
    with pytest.raises(
        NotFoundError, match=rf"workflow '{name}' has no version 7 \(its versions: 1-3\)"
    ):
        wfrunner.start_run.delay(f"{name}@7").get(timeout=10)
    with pytest.raises(
        NotFoundError, match=rf"no workflow named 'nothing-{name}' \(registered names: .*{name}"
    ):
        wfrunner.start_run.delay(f"nothing-{name}", version=1).get(timeout=10)
    with pytest.raises(
        NotFoundError, match=r"no workflow with id 'zzz', nor one named so \(registered"
    ):
        client.submit_run("zzz")
    with pytest.raises(WorkflowError, match="names version 2 but version 3 was given"):
        client.submit_run(f"{name}@2", version=3)


def test_cli_lists_versions_and_runs_a_name(worker: Any, tmp_path: Any) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    v1 = client.register_workflow(flow(name, "B"))
    v2 = client.register_workflow(flow(name, "C"))
    env = {
        **os.environ,
        "WFRUNNER_REDIS_URL": runtime().redis_url,
        "WFRUNNER_DATABASE_URL": runtime().database_url,
    }
    table = invoke("workflows", name, env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["name", "version", "id", "registered"]
    assert [line.split()[:3] for line in lines[1:]] == [[name, "2", v2], [name, "1", v1]]
    listed = json.loads(invoke("workflows", name, "--json", env=env).stdout)
    assert [(w["version"], w["workflow_id"]) for w in listed] == [(2, v2), (1, v1)]

    ran = invoke("run", f"{name}@1", env=env)
    assert ran.returncode == 0, ran.stderr
    doc = client.wait_for_run(ran.stdout.strip(), timeout=60)
    assert doc["workflow_id"] == v1
    status = invoke("status", doc["run_id"], env=env)
    assert f"workflow  {name}@1 ({v1})" in status.stdout

    missing = invoke("run", f"{name}@9", env=env)
    assert missing.returncode == 2
    assert f"workflow '{name}' has no version 9 (its versions: 1-2)" in missing.stderr
    none = invoke("workflows", f"none-{name}", env=env)
    assert none.returncode == 0 and none.stderr == f"no workflow named 'none-{name}'\n"


def test_api_starts_a_name_or_a_version_and_lists_versions(api: Any) -> None:
    name = f"api-{uuid.uuid4().hex[:8]}"
    v1 = client.register_workflow(flow(name, "B"))
    v2 = client.register_workflow(flow(name, "C"))
    for body, expected in [
        ({"workflow": name}, v2),
        ({"workflow": f"{name}@1"}, v1),
        ({"workflow": name, "version": 1}, v1),
        ({"workflow_id": v1}, v1),
    ]:
        done = api.post("/runs", json={**body, "inputs": {}})
        assert done.status_code == 202, done.text
        doc = client.wait_for_run(done.json()["run_id"], timeout=60)
        assert doc["workflow_id"] == expected, body
        got = api.get(f"/runs/{doc['run_id']}").json()
        assert (got["workflow_name"], got["workflow_version"]) == (name, 2 if expected == v2 else 1)
    missing = api.post("/runs", json={"workflow": name, "version": 5})
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"workflow '{name}' has no version 5 (its versions: 1-2)"
    for bad in [{"workflow": name, "workflow_id": v1}, {"workflow_id": v1, "version": 1}, {}]:
        refused = api.post("/runs", json=bad)
        assert refused.status_code == 422, bad
    listed = api.get("/workflows", params={"name": name}).json()["items"]
    assert [(w["name"], w["version"], w["workflow_id"]) for w in listed] == [
        (name, 2, v2),
        (name, 1, v1),
    ]
    assert all(w["created_at"] for w in listed)


def test_a_start_named_by_name_delivered_again_keeps_the_recorded_version(worker: Any) -> None:
    """A start message naming a name, delivered again after a newer version was
    registered, goes on with the version its run was recorded with."""
    name = f"again-{uuid.uuid4().hex[:8]}"
    v1 = client.register_workflow(flow(name, "B"))
    run_id = uuid.uuid4().hex
    runtime().store.create_run(v1, {}, 1, run_id=run_id)  # what its first delivery made
    client.register_workflow(flow(name, "C"))  # v2, registered meanwhile
    wfrunner.start_run.apply_async(args=[name], kwargs={"inputs": {}}, task_id=run_id)
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert (doc["workflow_id"], doc["workflow_version"]) == (v1, 1)
    assert [p["to"] for p in doc["path"]] == ["A", "B"]
