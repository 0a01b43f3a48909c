"""Paused and rerun runs' hot state on the real Redis and PostgreSQL, delivery by
delivery (tests/harness.py): what a paused run's deliveries do, and what a rebuild after
a Redis loss makes of a paused run and of a run rerun --from a node."""

from __future__ import annotations

import itertools
from typing import Any

from tests.harness import Harness
from wfrunner import pausing, recovery, redrive
from wfrunner.engine import keys
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus


def chain(*names: str, fail: str | None = None) -> dict[str, Any]:
    def node(name: str) -> dict[str, Any]:
        expression = "1 / 0" if name == fail else f"['{name}']"
        return {"id": name, "type": "transform", "config": {"expression": expression}}

    return {
        "nodes": [node(n) for n in names],
        "edges": [{"from": a, "to": b} for a, b in itertools.pairwise(names)],
    }


def test_a_paused_runs_delivery_is_refused_without_counting_an_attempt(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain("A", "B", "C"), {})
    h.deliver()  # A
    pausing.pause(rt, h.run_id)
    [b] = list(h.queue)
    outcome = h.deliver()
    assert outcome.ignored and "paused" in outcome.ignored and outcome.attempt == 0
    assert rt.redis.hget(keys.attempts_key(h.run_id), b.key) is None
    assert list(rt.state.pending(h.run_id)) == [b.key]
    resumed = pausing.resume(rt, h.run_id)
    assert [(t.key, delay) for t, delay in resumed.tokens] == [(b.key, 0.0)]
    h._publish([t for t, _ in resumed.tokens])
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert all(n["attempts"] == 1 for n in doc["nodes"].values())


def test_a_node_begun_before_the_pause_commits_and_its_successor_waits(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain("A", "B"), {})
    [a] = list(h.queue)
    h.queue.clear()
    begun = rt.state.begin(a, 0.0, None, "holder-1")  # A's delivery began ...
    pausing.pause(rt, h.run_id)  # ... then the run was paused
    assert begun.state == "running"
    outcome = h.process(a)  # a second delivery of A is refused: A is running elsewhere
    assert outcome.ignored
    commit = rt.state.commit(
        a, [a.child("B", None)], 0.0, [], nonce="n", epoch=begun.epoch, holder="holder-1"
    )
    assert commit.state == "paused" and commit.changed  # committed, while paused
    assert [t.to_node for t in rt.state.pending(h.run_id).values()] == ["B"]


def test_a_paused_run_lost_by_redis_is_rebuilt_paused(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain("A", "B", "C"), {})
    h.deliver()  # A
    pausing.pause(rt, h.run_id)
    assert rt.store.get_run(h.run_id).status is RunStatus.PAUSED
    h.lose_hot_state()  # flush, lose Redis and the queued messages, reconcile
    assert not h.queue  # nothing published: the run is paused
    assert rt.state.meta(h.run_id)["state"] == "paused"
    assert [t.to_node for t in rt.state.pending(h.run_id).values()] == ["B"]
    h._publish([t for t, _ in pausing.resume(rt, h.run_id).tokens])
    assert h.drain()["status"] == "COMPLETED"


def test_a_rerun_from_a_node_survives_a_redis_loss(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain("A", "B", "C", fail="C"), {})
    assert h.drain()["status"] == "FAILED"
    done = redrive.redrive(rt, h.run_id, "B", by="t")
    assert [t.to_node for t in done.tokens] == ["B"]
    h.queue.clear()
    rt.redis.delete(*keys.run_keys(h.run_id))  # lost before anything of attempt 2 ran
    h.reconcile()
    assert [t.to_node for t in h.queue] == ["B"]  # the rebuild still leaves B's output out
    assert "B" not in rt.redis.hgetall(keys.context_key(h.run_id))
    doc = h.drain()
    assert doc["status"] == "FAILED" and doc["attempt"] == 2  # C still divides by zero
    assert doc["nodes"]["B"]["iterations"] == 2 and doc["nodes"]["A"]["iterations"] == 1
    assert recovery.rebuild(rt, h.run_id) == []  # an ended run is not rebuilt
