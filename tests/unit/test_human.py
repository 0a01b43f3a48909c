"""The pure decisions of a human node's delivery (wfrunner/engine/human.py)."""

from __future__ import annotations

from wfrunner.compiler.ir import IRNode
from wfrunner.engine import human


def node(timeout_ms: int | None = None, **config: object) -> IRNode:
    return IRNode(id="gate", type="human", config=dict(config), timeout_ms=timeout_ms)


def test_a_request_without_a_timeout_waits_for_ever() -> None:
    req = human.request(node(), "", 100.0)
    assert req["deadline"] is None and human.until(req) == human.NO_DEADLINE
    assert human.verdict(req, None, 10**9).action == "wait"


def test_before_its_deadline_a_request_waits_and_after_it_the_policy_decides() -> None:
    req = human.request(node(timeout_ms=2000), "", 100.0)
    assert req["deadline"] == 102.0 and req["on_timeout"] == "reject"
    assert human.verdict(req, None, 101.9).action == "wait"
    late = human.verdict(req, None, 102.0)
    assert late.action == "reject"
    assert late.reason == "approval timed out after 2 s (timeout_ms; on_timeout is reject)"
    assert late.timed_out is not None and late.timed_out["by"] == human.TIMEOUT


def test_an_approve_policy_approves_at_the_deadline() -> None:
    req = human.request(node(timeout_ms=1000, on_timeout="approve"), "", 100.0)
    done = human.verdict(req, None, 105.0)
    assert done.action == "approve"
    assert done.output["approved"] is True and done.output["by"] == "timeout"


def test_a_decision_made_wins_over_the_deadline() -> None:
    req = human.request(node(timeout_ms=1000), "", 100.0)
    made = human.decision("approve", "alice", "fine", {"n": 1}, 100.5)
    done = human.verdict(req, made, 200.0)
    assert (done.action, done.timed_out) == ("approve", None)
    assert done.output == {
        "approved": True,
        "decision": "approve",
        "by": "alice",
        "comment": "fine",
        "data": {"n": 1},
        "decided_at": 100.5,
    }


def test_a_rejection_names_who_and_why() -> None:
    req = human.request(node(), "", 100.0)
    made = human.decision("reject", "bob", "too expensive", None, 101.0)
    assert human.verdict(req, made, 101.0).reason == "rejected by bob: too expensive"
    anonymous = human.decision("reject", None, None, None, 101.0)
    assert human.verdict(req, anonymous, 101.0).reason == "rejected"
