"""``POST /runs/{id}/pause|resume|rerun`` over HTTP on a real worker: a run waiting for
an approval paused, decided while paused, resumed; refusals as 409 / 404."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import httpx


def fn(node_id: str, name: str = "t.increment", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": list(nodes), "edges": [{"from": a["id"], "to": b["id"]}
                                            for a, b in pairwise(nodes)]}  # fmt: skip


def start(api: httpx.Client, definition: dict[str, Any], inputs: Any) -> str:
    registered = api.post("/workflows", json=definition)
    assert registered.status_code == 201, registered.text
    workflow_id = registered.json()["workflow_id"]
    started = api.post("/runs", json={"workflow_id": workflow_id, "inputs": inputs})
    assert started.status_code == 202, started.text
    return str(started.json()["run_id"])


def document(api: httpx.Client, run_id: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while not done(doc := api.get(f"/runs/{run_id}").json()):
        assert time.monotonic() < deadline, doc
        time.sleep(0.1)
    return doc  # type: ignore[no-any-return]


def finished(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return document(api, run_id, lambda d: d["status"] in ("COMPLETED", "FAILED", "CANCELLED"))


def test_pause_a_waiting_run_decide_it_and_resume_over_http(api: httpx.Client) -> None:
    flow = chain(
        fn("A"),
        {"id": "gate", "type": "human", "config": {"prompt": "go?"}},
        {"id": "B", "type": "transform", "config": {"expression": "input.data.x + 1"}},
    )
    run_id = start(api, flow, {"x": 1})
    document(api, run_id, lambda d: d["nodes"]["gate"]["status"] == "WAITING")
    paused = api.post(f"/runs/{run_id}/pause", json={"reason": "audit", "by": "ops"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "PAUSED"
    assert api.post(f"/runs/{run_id}/pause").status_code == 409
    listed = api.get("/runs", params={"status": "PAUSED"}).json()["items"]
    assert run_id in [r["run_id"] for r in listed]
    # a decision made while paused is kept; the node it lets go on waits for the resume
    decided = api.post(f"/runs/{run_id}/approvals/gate", json={"decision": "approve",
                                                               "data": {"x": 41}})  # fmt: skip
    assert decided.status_code == 200, decided.text
    time.sleep(1.5)
    doc = api.get(f"/runs/{run_id}").json()
    assert doc["status"] == "PAUSED" and doc["nodes"]["B"]["status"] == "PENDING"
    resumed = api.post(f"/runs/{run_id}/resume", json={"by": "ops"})
    assert resumed.status_code == 200, resumed.text
    done = finished(api, run_id)
    assert done["status"] == "COMPLETED" and done["nodes"]["B"]["output"] == 42
    again = api.post(f"/runs/{run_id}/resume")
    assert again.status_code == 409 and "has already ended (COMPLETED)" in again.json()["detail"]
    assert api.post("/runs/nope/pause").status_code == 404
    assert api.post("/runs/nope/resume").status_code == 404


def test_rerun_over_http(api: httpx.Client) -> None:
    flow = chain(fn("A"), fn("B", "t.boom", message="still broken"))
    run_id = start(api, flow, {"x": 1})
    assert finished(api, run_id)["status"] == "FAILED"
    assert api.post(f"/runs/{run_id}/rerun", json={"from": "Z"}).status_code == 404
    refused = api.post(f"/runs/{run_id}/rerun", json={"from": "B"})
    assert refused.status_code == 409 and "never completed" in refused.json()["detail"]
    rerun = api.post(f"/runs/{run_id}/rerun", json={"from": "A", "reason": "try again"})
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["attempt"] == 2
    done = finished(api, run_id)
    assert done["status"] == "FAILED" and "still broken" in done["error"]
    assert done["nodes"]["A"]["attempts"] == 2  # --from A: it ran again
    assert [r["from"] for r in done["redrives"]] == ["A"]
    completed = start(api, chain(fn("C")), {"x": 1})
    assert finished(api, completed)["status"] == "COMPLETED"
    assert api.post(f"/runs/{completed}/rerun").status_code == 409
    assert api.post("/runs/nope/rerun").status_code == 404
