"""Sub-workflow nodes on a real worker, Redis and PostgreSQL: a child run started once,
waited for holding nothing, its output taken; a failing child failing the node (which
on_error catches); cancelling the parent cancelling the child; a redelivered token
starting no second child; registration refusing what cannot run."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from itertools import pairwise
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e import handlers
from tests.e2e.test_approvals import start, until
from tests.e2e.test_on_error import fn
from tests.harness import Harness
from wfrunner import client, control, subflows
from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.errors import CompileError
from wfrunner.replay import replay_run
from wfrunner.runtime import Runtime, runtime
from wfrunner.settings import Settings
from wfrunner.states import RunStatus


def chain(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    edges = [{"from": a["id"], "to": b["id"]} for a, b in pairwise(nodes)]
    return {"metadata": {"name": name}, "nodes": list(nodes), "edges": edges}


def sub(node_id: str, workflow: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "subworkflow", "config": {"workflow": workflow}, **extra}


def _open(gate: str) -> None:
    handlers.gates.setdefault(gate, threading.Event()).set()


def register(definition: dict[str, Any]) -> str:
    return client.register_workflow(definition)


def children(run_id: str) -> list[Any]:
    return runtime().store.child_runs(run_id)


def test_a_parent_completes_with_its_childs_output(worker: Any) -> None:
    register(chain("child-add", fn("A", "t.increment"), fn("B", "t.increment")))
    parent = chain(
        "parent-add",
        fn("P", "t.increment"),
        sub("S", "child-add"),
        {"id": "T", "type": "transform", "config": {"expression": "input.B.x * 10"}},
    )
    run_id = start(worker, parent, {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    s = doc["nodes"]["S"]
    assert s["status"] == "COMPLETED" and s["output"] == {"B": {"x": 4}}
    assert doc["nodes"]["T"]["output"] == 40
    [child] = children(run_id)
    assert s["child_run_id"] == child.id and child.status is RunStatus.COMPLETED
    assert child.parent_node == "S"
    child_doc = client.get_run(child.id)
    assert child_doc["parent"] == {"run_id": run_id, "node": "S"}
    assert child_doc["inputs"] == {"x": 2}
    kinds = [e.type for e in runtime().store.list_events(run_id)]
    assert kinds.count("child_started") == 1 and kinds.count("child_ended") == 1
    for replayed in (run_id, child.id):
        report = replay_run(replayed)
        assert report.identical, report.lines()
    assert kinds.count("node_started") == 3  # P, S (once, for the child), T


def test_a_failing_child_fails_the_node_and_on_error_catches_it(worker: Any) -> None:
    register(chain("child-boom", fn("A", "t.boom", config={"message": "child broke"})))
    caught = {
        "metadata": {"name": "parent-catches"},
        "nodes": [
            sub("S", "child-boom", on_error="H"),
            fn("T", "t.increment"),
            fn("H", "t.recover"),
        ],
        "edges": [{"from": "S", "to": "T"}],
    }
    run_id = start(worker, caught, {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    [child] = children(run_id)
    s = doc["nodes"]["S"]
    assert s["status"] == "FAILED" and s["caught"] is True
    assert s["error"].startswith(f"node 'S' failed: child run {child.id} failed: node 'A'")
    assert "child broke" in s["error"]
    assert doc["nodes"]["T"]["status"] == "SKIPPED"
    assert doc["nodes"]["H"]["output"]["recovered"] == "S"

    uncaught = chain("parent-fails", sub("S", "child-boom"), fn("T", "t.increment"))
    run_id = start(worker, uncaught, {"x": 1})
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "FAILED" and "child broke" in doc["error"]


def test_cancelling_the_parent_cancels_its_child(worker: Any) -> None:
    register(chain("child-slow", fn("A", "t.wait", config={"gate": "sub-cancel"})))
    run_id = start(worker, chain("parent-slow", sub("S", "child-slow")), {"x": 1})
    until(lambda: handlers.calls["t.wait:sub-cancel"] == 1)
    [child] = children(run_id)
    try:
        doc = control.cancel_run(run_id, "no longer needed", by="test")
        assert doc["status"] == "CANCELLED"
        assert doc["nodes"]["S"]["status"] == "FAILED"
        assert "waiting for its child run" in doc["nodes"]["S"]["error"]
        gone = until(
            lambda: runtime().store.get_run(child.id).status is RunStatus.CANCELLED or None
        )
        assert gone
        assert f"parent run {run_id} ended CANCELLED" in str(
            runtime().store.get_run(child.id).error
        )
    finally:
        _open("sub-cancel")


def test_a_redelivered_subworkflow_token_starts_no_second_child(worker: Any) -> None:
    rt = runtime()
    register(chain("child-gated", fn("A", "t.wait", config={"gate": "sub-redeliver"})))
    definition = chain("parent-gated", sub("S", "child-gated"), fn("T", "t.increment"))
    run_id = start(worker, definition, {"x": 1})
    until(lambda: handlers.calls["t.wait:sub-redeliver"] == 1)
    [child] = children(run_id)
    [raw] = rt.state.client.hvals(keys.pending_key(run_id))
    token = Token.from_dict(json.loads(raw))
    assert token.to_node == "S"
    assert rt.state.client.hget(keys.running_key(run_id), token.key).endswith("|child")
    by_hand = Harness(rt, run_id=run_id, workflow_id=client.get_run(run_id)["workflow_id"])
    try:
        for _ in range(2):  # the broker gives the message out again, twice
            outcome = by_hand.process(token)
            assert outcome.ignored == f"waiting for its child run {child.id}"
        assert [c.id for c in children(run_id)] == [child.id]
        kinds = [e["type"] for e in rt.state.events(run_id)]
        assert kinds.count("child_started") == 1
    finally:
        _open("sub-redeliver")
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert handlers.calls["t.wait:sub-redeliver"] == 1  # the child ran once
    assert [c.id for c in children(run_id)] == [child.id]


def test_registration_refuses_an_unknown_child_and_a_workflow_including_itself(
    worker: Any,
) -> None:
    with pytest.raises(CompileError) as unknown:
        register(chain("needs-ghost", sub("S", "ghost-workflow")))
    assert "node 'S': config.workflow 'ghost-workflow' is not a registered workflow" in str(
        unknown.value
    )
    with pytest.raises(CompileError) as itself:
        register(chain("selfish", sub("S", "selfish")))
    assert "is not a registered workflow" in str(itself.value)  # not registered yet
    register(chain("loop-a", fn("A", "t.increment")))
    register(chain("loop-b", sub("S", "loop-a")))
    with pytest.raises(CompileError) as indirect:  # a new version of loop-a including loop-b
        register(chain("loop-a", sub("S", "loop-b")))
    assert "would run workflow 'loop-a' inside itself (loop-a -> loop-b -> loop-a)" in str(
        indirect.value
    )
    with pytest.raises(CompileError) as direct:
        register(chain("loop-b", sub("S", "loop-b")))
    assert "(loop-b -> loop-b)" in str(direct.value)
    shallow = Runtime(dataclasses.replace(Settings.from_env(), max_subworkflow_depth=1))
    try:
        with pytest.raises(CompileError) as deep:  # loop-b already nests loop-a
            client.register_workflow(chain("deep", sub("S", "loop-b")), shallow)
        assert "nests sub-workflows 2 deep, more than WFRUNNER_MAX_SUBWORKFLOW_DEPTH (1)" in str(
            deep.value
        )
        client.register_workflow(chain("shallow", sub("S", "loop-a")), shallow)
    finally:
        shallow.close()


def test_the_compiler_refuses_a_subworkflow_node_without_a_workflow() -> None:
    from wfrunner.compiler import compile_workflow

    with pytest.raises(CompileError) as refused:
        compile_workflow(chain("no-child", {"id": "S", "type": "subworkflow", "config": {}}))
    assert "node 'S': a subworkflow node needs config.workflow" in str(refused.value)


def test_the_reconciler_passes_on_a_childs_end_its_parent_missed(worker: Any) -> None:
    """The process that recorded the child's end died before telling the parent: here the
    child's link names another token, so its end decides nothing; once the link is right
    again, the reconciler's pass decides the waiting node."""
    rt = runtime()
    register(chain("child-missed", fn("A", "t.wait", config={"gate": "sub-missed"})))
    run_id = start(worker, chain("parent-missed", sub("S", "child-missed")), {"x": 1})
    until(lambda: handlers.calls["t.wait:sub-missed"] == 1)
    [child] = children(run_id)
    engine = sa.create_engine(rt.store.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE runs SET parent_token = 'elsewhere' WHERE id = :id"),
                {"id": child.id},
            )
        _open("sub-missed")
        until(lambda: runtime().store.get_run(child.id).status is RunStatus.COMPLETED)
        time.sleep(0.5)
        assert client.get_run(run_id)["nodes"]["S"]["status"] == "RUNNING"  # still waiting
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE runs SET parent_token = :token WHERE id = :id"),
                {"id": child.id, "token": child.parent_token},
            )
    finally:
        engine.dispose()
    assert subflows.reconcile_children(rt) >= 1
    doc = client.wait_for_run(run_id, timeout=60)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["S"]["output"] == {"A": {"x": 1}}


def test_the_api_lists_a_runs_children_and_shows_the_link(
    api: httpx.Client,
) -> None:
    register(chain("child-api", fn("A", "t.increment")))
    run_id = start(None, chain("parent-api", sub("S", "child-api")), {"x": 1})
    client.wait_for_run(run_id, timeout=60)
    listed = api.get(f"/runs/{run_id}/children")
    assert listed.status_code == 200, listed.text
    [child] = listed.json()["items"]
    assert child["node"] == "S" and child["status"] == "COMPLETED"
    doc = api.get(f"/runs/{child['run_id']}").json()
    assert doc["parent"] == {"run_id": run_id, "node": "S"}
    assert api.get(f"/runs/{run_id}").json()["nodes"]["S"]["child_run_id"] == child["run_id"]
    assert api.get("/runs/no-such-run/children").status_code == 404
