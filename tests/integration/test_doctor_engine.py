"""What the engine's own repairs leave for ``wfrunner doctor`` and ``wfrunner trace``:
the reconciler's ``reconciler_repaired`` event, the timeout detector's findings in its
``run_failed`` event, and a counter that disagrees with the outbox, driven by
tests/harness.py on the real Redis and PostgreSQL."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from tests.harness import Harness
from wfrunner import client, lifecycle, poison
from wfrunner.doctor import diagnose
from wfrunner.engine import keys
from wfrunner.runtime import Runtime


def chain(n: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "type": "transform", "config": {"expression": f"{i}"}} for i in range(n)
    ]
    return {"nodes": nodes, "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]}


def events(rt: Runtime, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in client.run_events(rt.store.get_run(run_id), rt) if e["type"] == kind]


def test_the_reconciler_records_which_tokens_it_republished_and_why(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    h.queue.clear()  # the entry token's message was lost
    rt.redis.hset(keys.meta_key(h.run_id), "activity", time.time() - 60)
    h.reconcile()
    assert [t.to_node for t in h.queue] == ["n0"]
    h.reconcile()  # republished just now: left alone
    assert len(h.queue) == 1
    found = events(rt, h.run_id, "reconciler_repaired")
    assert len(found) == 1
    assert found[0]["repair"] == "republished" and found[0]["by"] == "reconciler"
    assert found[0]["tokens"][0]["cause"] == "lost_message"
    assert "republished 1 token at" in found[0]["summary"]
    assert "n0 (no worker took it for 60 s)" in found[0]["summary"]
    assert rt.redis.hget(keys.PASSES_KEY, "reconcile") is not None
    assert h.drain()["status"] == "COMPLETED"


def test_the_timeout_detector_keeps_what_it_found_in_the_runs_history(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    h.queue.clear()
    rt.redis.hset(keys.meta_key(h.run_id), "activity", time.time() - 60)
    time.sleep(3.2)  # past the run timeout, and the reconciler's 3 s stall threshold
    short = Runtime(dataclasses.replace(rt.settings, run_timeout=1))
    try:
        assert lifecycle.expire_idle_runs(short) == [h.run_id]
    finally:
        short.close()
    failed = events(rt, h.run_id, "run_failed")
    assert failed[0]["detected_by"] == "timeout"
    assert any(line.startswith("node n0: no worker took it for") for line in failed[0]["found"])
    assert rt.redis.hget(keys.PASSES_KEY, "detect_timeouts") is not None


def test_a_counter_that_disagrees_with_the_outbox_is_found_with_the_replays_view(
    rt: Runtime,
) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    rt.redis.set(keys.counter_key(h.run_id), 3)
    found = diagnose(h.run_id, rt, broker=False)
    mismatch = next(f for f in found.findings if f.kind == "counter_mismatch")
    assert mismatch.stuck and found.action == "rebuild"
    assert mismatch.details == {
        "counter": 3,
        "outbox": 1,
        "replayed_counter": 1,
        "replayed_outbox": 1,
    }


def test_a_parked_poison_message_naming_the_run_is_found(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    raw = f'{{"body": "not base64 [\\"{h.run_id}\\", ...]"}}'
    poison.park(rt.redis, poison.Poison.of(raw, "wfrunner.tasks", "body is not valid base64"))
    found = diagnose(h.run_id, rt, broker=False)
    told = next(f for f in found.findings if f.kind == "poison_message")
    assert "parked from wfrunner.tasks: body is not valid base64" in told.summary
    other = Harness(rt)
    other.start(chain(1), {})
    elsewhere = diagnose(other.run_id, rt, broker=False).findings
    assert "poison_message" not in [f.kind for f in elsewhere]
