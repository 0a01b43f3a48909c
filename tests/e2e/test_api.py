"""The REST API over real HTTP (uvicorn on a free port, httpx) against a real in-process
Celery worker on the real Redis and PostgreSQL: register, start, follow, list, retry."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

import wfrunner
from tests.e2e.handlers import gates

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workflows"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}

#: set by a test to let api.fail_until_fixed succeed
fixed = threading.Event()


@wfrunner.handler("api.fail_until_fixed")
def fail_until_fixed(value: Any, config: dict[str, Any]) -> Any:
    if not fixed.is_set():
        raise RuntimeError("not fixed yet")
    return {"fixed": True}


def fn(node_id: str, name: str = "t.increment", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": name, **config}}


def chain(*nodes: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    flow: dict[str, Any] = {"nodes": list(nodes), "edges": edges}
    if name is not None:
        flow["metadata"] = {"name": name}
    return flow


def register(api: httpx.Client, definition: dict[str, Any]) -> str:
    done = api.post("/workflows", json=definition)
    assert done.status_code == 201, done.text
    return str(done.json()["workflow_id"])


def start(api: httpx.Client, workflow_id: str, inputs: Any = None) -> str:
    done = api.post("/runs", json={"workflow_id": workflow_id, "inputs": inputs})
    assert done.status_code == 202, done.text
    assert done.json()["status"] == "QUEUED"
    return str(done.json()["run_id"])


def wait_ended(api: httpx.Client, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = api.get(f"/runs/{run_id}").json()
        if doc["status"] in TERMINAL or time.monotonic() > deadline:
            return dict(doc)
        time.sleep(0.1)


def sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(event name, data, id) of each server-sent event; comments skipped."""
    name, data, seq = "message", "", None
    for line in lines:
        if line == "":
            if data:
                yield name, json.loads(data), seq
            name, data, seq = "message", "", None
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line.startswith("id: "):
            seq = line[4:]


def test_register_start_and_read_a_completed_run(api: httpx.Client) -> None:
    definition = chain(fn("A"), fn("B"), fn("C"), name=f"seq-{uuid.uuid4().hex[:6]}")
    created = api.post("/workflows", json=definition)
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == definition["metadata"]["name"] and body["version"] == 1
    again = api.post("/workflows", json=definition).json()
    assert again == body  # the same definition is the same workflow
    changed = api.post("/workflows", json=chain(fn("A"), fn("B"), name=body["name"])).json()
    assert changed["version"] == 2 and changed["workflow_id"] != body["workflow_id"]

    run_id = start(api, body["workflow_id"], {"x": 1})
    doc = wait_ended(api, run_id)
    assert doc["status"] == "COMPLETED", doc
    assert doc["run_id"] == run_id and doc["workflow_id"] == body["workflow_id"]
    assert doc["nodes"]["C"]["output"] == {"x": 4}
    assert doc["path"][-1] == {"from": "B", "to": "C"}
    assert doc["stats"]["nodes_executed"] == 3

    shown = api.get(f"/workflows/{body['workflow_id']}").json()
    assert shown["definition"] == definition and shown["name"] == body["name"]
    assert set(shown["ir"]["nodes"]) == {"A", "B", "C"}


def test_events_stream_follows_a_live_run_to_its_end(api: httpx.Client) -> None:
    gate = f"api-{uuid.uuid4().hex}"
    workflow_id = register(api, chain(fn("A"), fn("W", "t.wait", gate=gate), fn("C")))
    run_id = start(api, workflow_id, {"x": 1})
    seen: list[dict[str, Any]] = []
    ids: list[str | None] = []
    headers = {"Accept": "text/event-stream"}
    with api.stream("GET", f"/runs/{run_id}/events", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for name, data, seq in sse(stream.iter_lines()):
            if name == "end":
                end = data
                break
            seen.append(data)
            ids.append(seq)
            if data["type"] == "node_started" and data["node"] == "W":
                # the run is blocked in W: what came so far came while it was running
                assert api.get(f"/runs/{run_id}").json()["status"] == "RUNNING"
                gates.setdefault(gate, threading.Event()).set()
    assert end == {"run_id": run_id, "status": "COMPLETED", "error": None}
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert ids == [str(e["seq"]) for e in seen]
    assert seen[0]["type"] == "run_started" and seen[-1]["type"] == "run_completed"
    started = [e["node"] for e in seen if e["type"] == "node_started"]
    assert started == ["A", "W", "C"]

    # the ended run's log, by pages, is what the stream sent
    pages: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(f"/runs/{run_id}/events", params={"after": after, "limit": 3}).json()
        assert page["run_status"] == "COMPLETED" and len(page["events"]) <= 3
        if not page["events"]:
            break
        pages += page["events"]
        after = page["next_after"]
    assert [(e["seq"], e["type"], e.get("node")) for e in pages] == [
        (e["seq"], e["type"], e.get("node")) for e in seen
    ]
    # the stream of an ended run, resumed after an event, replays the rest and ends
    with api.stream(
        "GET", f"/runs/{run_id}/events/stream", headers={"Last-Event-ID": str(len(seen) - 2)}
    ) as stream:
        replay = list(sse(stream.iter_lines()))
    assert [d["seq"] for n, d, _ in replay if n == "message"] == [len(seen) - 1, len(seen)]
    assert replay[-1][0] == "end"


def test_runs_list_filters_and_pages(api: httpx.Client) -> None:
    since = datetime.now(UTC)
    ok_flow = register(api, chain(fn("A"), name=f"ok-{uuid.uuid4().hex[:6]}"))
    bad_flow = register(api, chain(fn("A"), fn("B", "t.boom"), name=f"bad-{uuid.uuid4().hex[:6]}"))
    ok_runs = [start(api, ok_flow, {"x": i}) for i in range(5)]
    bad_runs = [start(api, bad_flow) for _ in range(2)]
    for run_id in ok_runs + bad_runs:
        wait_ended(api, run_id)

    def walk(**params: Any) -> tuple[list[str], int]:
        ids: list[str] = []
        pages = 0
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            done = api.get("/runs", params=query)
            assert done.status_code == 200, done.text
            pages += 1
            ids += [item["run_id"] for item in done.json()["items"]]
            if (cursor := done.json()["next_cursor"]) is None:
                return ids, pages

    by_flow, pages = walk(workflow_id=ok_flow, limit=2)
    assert by_flow == ok_runs[::-1] and pages == 3  # newest first, over three pages
    failed, _ = walk(status="FAILED", workflow_id=bad_flow)
    assert failed == bad_runs[::-1]
    both, _ = walk(status=["FAILED", "COMPLETED"], since=since.isoformat(), limit=3)
    assert set(both) == set(ok_runs + bad_runs) and len(both) == 7
    assert walk(status="COMPLETED", workflow_id=bad_flow)[0] == []
    recent, _ = walk(since="1h", workflow_id=ok_flow)
    assert recent == ok_runs[::-1]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert walk(since=future)[0] == []

    item = api.get("/runs", params={"workflow_id": bad_flow, "limit": 1}).json()["items"][0]
    assert item["run_id"] == bad_runs[-1] and item["status"] == "FAILED"
    assert item["workflow_name"].startswith("bad-") and item["workflow_version"] == 1
    assert "boom" in item["error"] and item["completed_at"] is not None

    for params, loc in [
        ({"status": "BOGUS"}, ["query", "status", 0]),
        ({"since": "yesterday"}, ["query", "since"]),
        ({"cursor": "garbage"}, ["query", "cursor"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 501}, ["query", "limit"]),
    ]:
        bad = api.get("/runs", params=params)
        assert bad.status_code == 422, (params, bad.text)
        assert bad.json()["detail"][0]["loc"] == loc, (params, bad.text)


def test_workflow_list_pages(api: httpx.Client) -> None:
    name = f"many-{uuid.uuid4().hex[:6]}"
    ids = [register(api, chain(fn("A", by=i), name=name)) for i in range(1, 4)]
    first = api.get("/workflows", params={"name": name, "limit": 2}).json()
    second = api.get("/workflows", params={"name": name, "cursor": first["next_cursor"]}).json()
    listed = first["items"] + second["items"]
    assert [w["workflow_id"] for w in listed] == ids[::-1]
    assert [w["version"] for w in listed] == [3, 2, 1] and second["next_cursor"] is None


def test_an_invalid_definition_is_a_422_naming_each_node_and_edge(api: httpx.Client) -> None:
    definition = json.loads((FIXTURES / "invalid" / "many_problems.json").read_text())
    done = api.post("/workflows", json=definition)
    assert done.status_code == 422
    problems = done.json()["detail"]
    locs = [p["loc"] for p in problems]
    assert ["body", "nodes", "b"] in locs and ["body", "nodes", "f"] in locs
    assert ["body", "nodes", "e"] in locs  # a loop's problems name the loop node
    assert ["body", "edges", "a->ghost"] in locs and ["body", "edges", "c->d"] in locs
    ghost = next(p for p in problems if p["loc"] == ["body", "edges", "a->ghost"])
    assert ghost["msg"] == 'edge a->ghost: unknown node "ghost"'
    assert len(problems) == 12

    for body, message in [
        (b"{not json", "request body: not valid JSON"),
        (b"[1, 2]", "request body: not a workflow"),
        (b'{"nodes": [], "x": NaN}', "NaN is not a JSON number"),
    ]:
        refused = api.post("/workflows", content=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body"]
        assert message in refused.json()["detail"][0]["msg"]


def test_a_collection_needs_its_name(api: httpx.Client) -> None:
    collection = {"one": chain(fn("A")), "two": chain(fn("B"))}
    refused = api.post("/workflows", json=collection)
    assert refused.status_code == 422
    assert "choose one with ?name=" in refused.json()["detail"][0]["msg"]
    picked = api.post("/workflows", json=collection, params={"name": "two"})
    assert picked.status_code == 201 and picked.json()["name"] == "two"
    shown = api.get(f"/workflows/{picked.json()['workflow_id']}").json()
    assert shown["definition"] == collection["two"]


def test_unknown_ids_are_404_and_bad_bodies_422(api: httpx.Client) -> None:
    for path in ["/workflows/nope", "/runs/nope", "/runs/nope/events", "/runs/nope/events/stream"]:
        missing = api.get(path)
        assert missing.status_code == 404, path
        assert "nope" in missing.json()["detail"]
    unknown = api.post("/runs", json={"workflow_id": "nope", "inputs": {}})
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("no workflow with id 'nope', nor one named so")
    assert api.post("/dead-letters/987654/retry").status_code == 404
    for body in [{}, {"workflow_id": ""}, {"workflow_id": "w", "extra": 1}]:
        bad = api.post("/runs", json=body)
        assert bad.status_code == 422, body
        assert bad.json()["detail"][0]["loc"][0] == "body"


def test_dead_letter_listed_and_retried(api: httpx.Client) -> None:
    fragile = fn("fragile", "api.fail_until_fixed")
    fragile["retry"] = {"max_attempts": 2, "backoff_ms": 50}
    workflow_id = register(api, chain(fn("first"), fragile, fn("last", "t.echo")))
    fixed.clear()
    run_id = start(api, workflow_id, {"x": 0})
    assert wait_ended(api, run_id)["status"] == "FAILED"
    letters = api.get("/dead-letters").json()["items"]
    letter = next(d for d in letters if d["run_id"] == run_id)
    assert (letter["node_id"], letter["attempts"], letter["kind"]) == ("fragile", 2, "node")
    assert "not fixed yet" in letter["error"]

    fixed.set()
    retried = api.post(f"/dead-letters/{letter['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json() == {"letter_id": letter["id"], "run_id": run_id}
    doc = wait_ended(api, run_id)
    assert doc["status"] == "COMPLETED" and doc["nodes"]["last"]["output"] == {"fixed": True}
    again = api.post(f"/dead-letters/{letter['id']}/retry")
    assert again.status_code == 409
    assert "was already retried" in again.json()["detail"] or "FAILED" in again.json()["detail"]
    open_ids = [d["id"] for d in api.get("/dead-letters").json()["items"]]
    assert letter["id"] not in open_ids
    every = api.get("/dead-letters", params={"status": "all"}).json()["items"]
    assert next(d for d in every if d["id"] == letter["id"])["status"] == "retried"


def _waiting(api: httpx.Client, run_id: str, node: str) -> None:
    deadline = time.monotonic() + 30
    while api.get(f"/runs/{run_id}").json()["nodes"][node]["status"] != "WAITING":
        assert time.monotonic() < deadline, f"{node} never waited"
        time.sleep(0.1)


def test_approve_and_reject_over_http(api: httpx.Client) -> None:
    flow = chain(
        fn("A"),
        {"id": "gate", "type": "human", "config": {"prompt": "go?"}},
        {"id": "B", "type": "transform", "config": {"expression": "input.data.x + 1"}},
    )
    workflow_id = register(api, flow)
    approved, rejected = start(api, workflow_id, {"x": 1}), start(api, workflow_id, {"x": 1})
    for run_id in (approved, rejected):
        _waiting(api, run_id, "gate")
    assert api.get(f"/runs/{approved}").json()["status"] == "WAITING"
    asked = api.get(f"/runs/{approved}/approvals").json()["approvals"]
    assert [(a["node"], a["prompt"], a["decision"]) for a in asked] == [("gate", "go?", None)]

    body = {"decision": "approve", "comment": "ok", "by": "erin", "data": {"x": 41}}
    done = api.post(f"/runs/{approved}/approvals/gate", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["status"] in ("RUNNING", "COMPLETED")  # no longer waiting
    assert api.post(f"/runs/{approved}/approvals/gate", json=body).status_code == 409
    doc = wait_ended(api, approved)
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["B"]["output"] == 42  # the approver's data, plus one
    decided = api.get(f"/runs/{approved}/approvals").json()["approvals"][0]["decision"]
    assert (decided["decision"], decided["by"], decided["comment"]) == ("approve", "erin", "ok")

    no = api.post(f"/runs/{rejected}/approvals/gate", json={"decision": "reject"})
    assert no.status_code == 200, no.text
    doc = wait_ended(api, rejected)
    assert (doc["status"], doc["error"]) == ("FAILED", "node 'gate' failed: rejected by api")
    assert api.post(f"/runs/{rejected}/approvals/gate", json=body).status_code == 409
    assert api.post(f"/runs/{rejected}/approvals/A", json=body).status_code == 404
    assert api.post("/runs/nope/approvals/gate", json=body).status_code == 404
    bad = api.post(f"/runs/{rejected}/approvals/gate", json={"decision": "maybe"})
    assert bad.status_code == 422


def test_cancel_over_http(api: httpx.Client) -> None:
    workflow_id = register(api, chain(fn("A"), {"id": "gate", "type": "human"}, fn("B")))
    run_id = start(api, workflow_id, {"x": 1})
    _waiting(api, run_id, "gate")
    done = api.post(f"/runs/{run_id}/cancel", json={"reason": "not needed", "by": "ops"})
    assert done.status_code == 200, done.text
    doc = done.json()
    assert (doc["status"], doc["error"]) == ("CANCELLED", "cancelled by ops: not needed")
    assert doc["nodes"]["gate"]["status"] == "FAILED"
    again = api.post(f"/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert "has already ended (CANCELLED)" in again.json()["detail"]
    assert api.post("/runs/nope/cancel").status_code == 404


def test_pictures_and_metrics_over_http(api: httpx.Client) -> None:
    flow = chain(fn("A"), {"id": "B", "type": "function", "config": {"function_name": "t.boom"}})
    workflow_id = register(api, flow)
    run_id = start(api, workflow_id, {"x": 1})
    assert wait_ended(api, run_id)["status"] == "FAILED"
    picture = api.get(f"/runs/{run_id}/graph.svg")
    assert picture.status_code == 200, picture.text
    assert picture.headers["content-type"].startswith("image/svg+xml")
    assert picture.text.lstrip().startswith(("<?xml", "<svg"))
    assert "FAILED" in picture.text and "COMPLETED" in picture.text  # nodes by status
    plain = api.get(f"/workflows/{workflow_id}/graph.svg")
    assert plain.status_code == 200 and "<svg" in plain.text and "FAILED" not in plain.text
    assert api.get("/runs/nope/graph.svg").status_code == 404
    scraped = api.get("/metrics")
    assert scraped.status_code == 200
    assert "wfrunner_queue_depth" in scraped.text
    assert httpx.get(api.base_url.join("/metrics")).status_code == 401  # behind the token
