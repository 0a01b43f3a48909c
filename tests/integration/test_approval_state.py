"""Approvals in the run's hot state, driven without Celery (tests/harness.py): a request
is made once whatever the deliveries, a decision is recorded once whatever the callers."""

from __future__ import annotations

import time
from typing import Any

from tests.harness import Harness
from wfrunner import approvals
from wfrunner.engine import human
from wfrunner.engine.events import event
from wfrunner.runtime import Runtime


def gate_flow() -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "gate", "type": "human"},
            {"id": "after", "type": "transform", "config": {"expression": "input.approved"}},
        ],
        "edges": [{"from": "gate", "to": "after"}],
    }


def kinds(h: Harness) -> list[str]:
    return [e["type"] for e in h.rt.state.events(h.run_id)]


def test_redelivering_a_waiting_token_asks_once(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(gate_flow())
    token = h.queue.popleft()
    for _ in range(3):  # the message given out again, the reconciler's republish, ...
        outcome = h.process(token)
        assert outcome.ignored and outcome.ignored.startswith("waiting for approval")
        assert outcome.waiting == 1
    assert kinds(h).count("approval_requested") == 1
    assert kinds(h).count("node_started") == 1
    requests = approvals.pending(rt, h.run_id)
    assert [(r["node"], r["decision"]) for r in requests] == [("gate", None)]


def test_a_decision_is_recorded_once_even_when_two_callers_race(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(gate_flow())
    token = h.queue.popleft()
    h.process(token)
    now = time.time()
    first = human.decision("approve", "alice", None, None, now)
    second = human.decision("reject", "bob", None, None, now)
    won = rt.state.decide_approval(h.run_id, token.key, first, event("approval_decided"), now)
    lost = rt.state.decide_approval(h.run_id, token.key, second, event("approval_decided"), now)
    assert (won.outcome, won.token, won.waiting) == ("decided", token, 0)
    assert (lost.outcome, lost.earlier) == ("already", first)
    assert kinds(h).count("approval_decided") == 1
    h.queue.append(token)
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["after"]["output"] is True


def test_an_approved_token_delivered_twice_completes_its_node_once(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(gate_flow())
    token = h.queue.popleft()
    h.process(token)
    approvals.decide(rt, h.run_id, "gate", "approve", by="alice")
    first = h.process(token)
    again = h.process(token)
    assert [t.to_node for t in first.dispatch] == ["after"]
    assert again.ignored == "token already committed (duplicate or late delivery)"
    assert kinds(h).count("node_completed") == 1
