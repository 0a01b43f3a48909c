"""Rerunning ended runs (redrive) on a real worker, Redis and PostgreSQL: the same run id
goes on from its failed nodes as a new attempt, completed nodes keep their outputs (their
handlers do not run again), ``--from`` runs a node and its downstream again, and the
history keeps both attempts."""

from __future__ import annotations

import time
from collections import Counter
from itertools import pairwise
from typing import Any

import pytest

import wfrunner
from tests.e2e.handlers import calls, gates
from tests.e2e.test_approvals import start, until
from tests.e2e.test_pause import chain as pause_chain
from wfrunner import client
from wfrunner.errors import ConflictError, NotFoundError
from wfrunner.runtime import runtime

#: calls per "<handler>:<tag>:<node>"
ran: Counter[str] = Counter()


def _broken(config: dict[str, Any]) -> bool:
    return bool(runtime().redis.exists(f"test:broken:{config['tag']}"))


@wfrunner.handler("r.step")
def step(value: Any, config: dict[str, Any]) -> Any:
    """Adds its node's name to ``seen``; fails while the test's Redis key says it is
    broken (``fragile``), as a bug fixed between the attempts would."""
    ran[f"{config['tag']}:{config['name']}"] += 1
    if config.get("fragile") and _broken(config):
        time.sleep(float(config.get("delay", 0)))  # a parallel branch completes meanwhile
        raise RuntimeError(f"{config['name']} is broken")
    seen = value.get("seen", []) if isinstance(value, dict) else []
    return {"seen": [*seen, config["name"]], "pass": ran[f"{config['tag']}:{config['name']}"]}


def node(tag: str, name: str, fragile: bool = False, delay: float = 0) -> dict[str, Any]:
    config = {"function_name": "r.step", "tag": tag, "name": name, "fragile": fragile}
    config["delay"] = delay
    return {"id": name, "type": "function", "config": config}


def broken_run(worker: Any, definition: dict[str, Any], tag: str) -> str:
    runtime().redis.set(f"test:broken:{tag}", 1)
    run_id = start(worker, definition, {})
    assert client.wait_for_run(run_id, timeout=30)["status"] == "FAILED"
    runtime().redis.delete(f"test:broken:{tag}")  # the fix is deployed
    return run_id


def chain(tag: str, fragile: str) -> dict[str, Any]:
    names = ["A", "B", "C"]
    return {
        "nodes": [node(tag, n, fragile=n == fragile) for n in names],
        "edges": [{"from": a, "to": b} for a, b in pairwise(names)],
    }


def counts(tag: str) -> dict[str, int]:
    return {k.split(":", 1)[1]: v for k, v in ran.items() if k.startswith(f"{tag}:")}


def test_a_failed_run_reruns_from_its_failed_node_keeping_what_completed(worker: Any) -> None:
    tag = f"rerun-{time.monotonic_ns()}"
    run_id = broken_run(worker, chain(tag, "B"), tag)
    failed = client.get_run(run_id)
    assert failed["nodes"]["B"]["status"] == "FAILED" and failed["attempt"] == 1
    doc = wfrunner.rerun(run_id, reason="fixed B", by="erin")
    assert doc["run_id"] == run_id and doc["attempt"] == 2
    done = client.wait_for_run(run_id, timeout=30)
    assert done["status"] == "COMPLETED" and done["error"] is None
    assert counts(tag) == {"A": 1, "B": 2, "C": 1}  # A's output was reused
    assert done["nodes"]["C"]["output"]["seen"] == ["A", "B", "C"]
    assert done["nodes"]["B"]["attempts"] == 2 and done["nodes"]["A"]["attempts"] == 1
    [redrive] = done["redrives"]
    assert redrive["attempt"] == 2 and redrive["from"] is None
    assert (redrive["by"], redrive["reason"], redrive["ended"]) == ("erin", "fixed B", "FAILED")
    assert "B is broken" in redrive["error"]
    kinds = [e.type for e in runtime().store.list_events(run_id)]
    assert kinds[0] == "run_started" and kinds[-1] == "run_completed"
    assert kinds.index("run_failed") < kinds.index("run_redriven") < kinds.index("run_completed")
    assert kinds.count("node_failed") == 1
    # B's dead letter was retried by the rerun: no open letter is left for the run
    assert all(d.run_id != run_id for d in runtime().store.list_dead_letters())
    with pytest.raises(ConflictError, match="is COMPLETED: only a FAILED or CANCELLED run"):
        wfrunner.rerun(run_id)


def test_rerun_from_a_node_runs_it_and_its_downstream_again(worker: Any) -> None:
    tag = f"from-{time.monotonic_ns()}"
    run_id = broken_run(worker, chain(tag, "C"), tag)
    assert counts(tag) == {"A": 1, "B": 1, "C": 1}
    wfrunner.rerun(run_id, from_node="B")
    done = client.wait_for_run(run_id, timeout=30)
    assert done["status"] == "COMPLETED"
    assert counts(tag) == {"A": 1, "B": 2, "C": 2}
    assert done["nodes"]["B"]["output"] == {"seen": ["A", "B"], "pass": 2}
    assert done["nodes"]["C"]["output"]["seen"] == ["A", "B", "C"]
    assert done["redrives"][0]["from"] == "B"


def test_rerun_from_a_branch_before_a_join(worker: Any) -> None:
    tag = f"join-{time.monotonic_ns()}"
    definition = {
        "nodes": [
            node(tag, "A"),
            node(tag, "B"),
            node(tag, "C", fragile=True, delay=2.0),
            {"id": "J", "type": "function", "wait_for_all": True,
             "config": {"function_name": "t.join_count", "tag": tag}},
        ],
        "edges": [{"from": "A", "to": "B"}, {"from": "A", "to": "C"},
                  {"from": "B", "to": "J"}, {"from": "C", "to": "J"}],
    }  # fmt: skip
    run_id = broken_run(worker, definition, tag)
    wfrunner.rerun(run_id, from_node="B")
    done = client.wait_for_run(run_id, timeout=30)
    assert done["status"] == "COMPLETED", done["error"]
    assert counts(tag) == {"A": 1, "B": 2, "C": 2}
    assert done["nodes"]["J"]["iterations"] == 1
    assert sorted(done["nodes"]["J"]["output"]["inputs"]) == ["B", "C"]


def test_rerun_refusals(worker: Any) -> None:
    tag = f"refused-{time.monotonic_ns()}"
    run_id = broken_run(worker, chain(tag, "B"), tag)
    with pytest.raises(ConflictError, match="node 'C' never completed in this run"):
        wfrunner.rerun(run_id, from_node="C")
    with pytest.raises(NotFoundError, match="the workflow has no node 'Z'"):
        wfrunner.rerun(run_id, from_node="Z")
    with pytest.raises(NotFoundError):
        wfrunner.rerun("no-such-run")
    assert client.get_run(run_id)["status"] == "FAILED"  # a refusal changes nothing
    gate = f"running-{tag}"
    running = start(
        worker,
        {"nodes": [{"id": "w", "type": "function",
                    "config": {"function_name": "t.wait", "gate": gate}}], "edges": []},
    )  # fmt: skip
    with pytest.raises(ConflictError, match="is RUNNING: only a FAILED or CANCELLED run"):
        wfrunner.rerun(running)
    until(lambda: calls[f"t.wait:{gate}"] == 1)
    gates[gate].set()
    assert client.wait_for_run(running, timeout=30)["status"] == "COMPLETED"


def test_a_cancelled_run_reruns_what_the_cancel_cut_short(worker: Any) -> None:
    tag = f"cancelled-{time.monotonic_ns()}"
    run_id = start(worker, pause_chain(tag), {"x": 1})
    until(lambda: calls[f"t.wait:{tag}"] == 1)
    wfrunner.pause_run(run_id)
    gates[tag].set()
    until(lambda: client.get_run(run_id)["nodes"]["slow"]["status"] == "COMPLETED")
    assert wfrunner.cancel_run(run_id, "wrong day")["status"] == "CANCELLED"
    doc = wfrunner.rerun(run_id)
    assert doc["status"] == "RUNNING" or doc["status"] == "COMPLETED"
    done = client.wait_for_run(run_id, timeout=30)
    assert done["status"] == "COMPLETED"
    assert calls[f"t.wait:{tag}"] == 1 and calls[f"t.count:{tag}"] == 1
    assert done["redrives"][0]["ended"] == "CANCELLED"


def test_rerunning_a_parent_reruns_its_failed_child_run(worker: Any) -> None:
    tag = f"parent-{time.monotonic_ns()}"
    client.register_workflow(
        {"metadata": {"name": f"child-{tag}"}, "nodes": [node(tag, "C", fragile=True)],
         "edges": []}
    )  # fmt: skip
    parent = {
        "metadata": {"name": f"parent-{tag}"},
        "nodes": [node(tag, "A"),
                  {"id": "S", "type": "subworkflow", "config": {"workflow": f"child-{tag}"}},
                  node(tag, "Z")],
        "edges": [{"from": "A", "to": "S"}, {"from": "S", "to": "Z"}],
    }  # fmt: skip
    run_id = broken_run(worker, parent, tag)
    [child] = runtime().store.child_runs(run_id)
    assert child.status.value == "FAILED"
    wfrunner.rerun(run_id)
    done = client.wait_for_run(run_id, timeout=60)
    assert done["status"] == "COMPLETED", done["error"]
    assert counts(tag) == {"A": 1, "C": 2, "Z": 1}
    [again] = runtime().store.child_runs(run_id)
    assert again.id == child.id and again.status.value == "COMPLETED"
    assert client.get_run(child.id)["attempt"] == 2
    # a completed subworkflow node is not run again by a --from before it
    runtime().redis.set(f"test:broken:{tag}z", 1)  # only Z is broken this time
    broken_z = [*parent["nodes"][:2], node(f"{tag}z", "Z", fragile=True)]
    failed_z = start(worker, {**parent, "nodes": broken_z})
    assert client.wait_for_run(failed_z, timeout=60)["status"] == "FAILED"
    with pytest.raises(ConflictError, match="node 'S' \\(a subworkflow node\\) completed"):
        wfrunner.rerun(failed_z, from_node="A")
    runtime().redis.delete(f"test:broken:{tag}z")
