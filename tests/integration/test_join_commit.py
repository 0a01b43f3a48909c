"""Issue 9 against the real Redis and PostgreSQL: a join arrival is recorded by the commit
that emits it (no task runs for an arrival that does not fire the join), one completion
check per run, and a node is handed only the run data its expressions read."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.harness import Harness
from wfrunner import client
from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime


def transform(node_id: str, expression: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"expression": expression or "input"}}


def diamond(d: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "nodes": [
            transform("A", "[input.n]"),
            transform("B", "input + [1]"),
            transform("C", "input + [2]"),
            d or {"id": "D", "type": "aggregate", "config": {"strategy": "concat"}},
        ],
        "edges": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "C"},
            {"from": "B", "to": "D"},
            {"from": "C", "to": "D"},
        ],
    }


def test_an_arrival_that_does_not_fire_is_consumed_by_its_emitters_commit(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(diamond(), {"n": 5})
    h.deliver()  # A -> B, C: two tokens in flight
    assert rt.state.counter(h.run_id) == 2
    ab = h.queue[0]
    b = h.deliver()  # B's arrival at D is recorded, D not complete: nothing is sent
    assert b.dispatch == []
    assert rt.state.counter(h.run_id) == 1  # B's token consumed, its arrival too
    assert rt.redis.hget(keys.joins_key(h.run_id), "D||B") is not None
    assert [t.to_node for t in rt.state.pending(h.run_id).values()] == ["C"]
    arrived = [e for e in rt.state.events(h.run_id) if e["type"] == "join_arrived"]
    assert [(e["from"], e["live"], e["by"]) for e in arrived] == [("B", True, ab.key)]
    copy = Token.from_dict(arrived[0]["token"])  # a stray copy of it (a broker's duplicate)
    assert h.process(copy).ignored == "token already committed (duplicate or late delivery)"
    c = h.deliver()  # C's arrival completes D: the one token sent to D
    assert [(t.from_node, t.to_node) for t in c.dispatch] == [("C", "D")]
    assert rt.state.counter(h.run_id) == 1
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == [5, 1, 5, 2]
    assert doc["nodes"]["D"]["attempts"] == 1
    assert h.completion_checks == 1


def test_a_retried_commit_records_the_arrival_once(rt: Runtime) -> None:
    """B's commit is sent again (its reply was lost): the arrival is not counted twice, so
    C's arrival still completes D, and the retry is answered as the commit it repeats."""
    h = Harness(rt)
    h.start(diamond(), {"n": 1})
    h.deliver()  # A
    token = h.queue.popleft()  # A -> B
    commit = rt.state.commit
    replies: list[Any] = []

    def twice(*args: Any, **kwargs: Any) -> Any:
        replies.append(commit(*args, **kwargs))
        replies.append(commit(*args, **kwargs))
        return replies[-1]

    rt.state.commit = twice  # type: ignore[method-assign]
    try:
        h.act(token, h.process(token))
    finally:
        rt.state.commit = commit  # type: ignore[method-assign]
    first, again = replies
    assert first.changed and not again.changed and again.mine
    assert first.emitted == again.emitted == []
    assert rt.redis.hget(keys.joins_key(h.run_id), "D|#n") == "1"
    assert rt.state.counter(h.run_id) == 1
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == [1, 1, 1, 2]


def test_a_lost_reply_of_the_commit_that_ends_the_counter_still_asks_for_the_check(
    rt: Runtime,
) -> None:
    h = Harness(rt)
    h.start({"nodes": [transform("A")], "edges": []}, {})
    token = h.queue.popleft()
    commit = rt.state.commit

    def lost_reply(*args: Any, **kwargs: Any) -> Any:
        commit(*args, **kwargs)  # applied, but the reply never came back: sent again
        return commit(*args, **kwargs)

    rt.state.commit = lost_reply  # type: ignore[method-assign]
    try:
        outcome = h.process(token)
    finally:
        rt.state.commit = commit  # type: ignore[method-assign]
    assert outcome.check_completion
    h.act(token, outcome)
    assert client.get_run(h.run_id, rt)["status"] == "COMPLETED"


def test_the_reconciler_finishes_a_run_whose_completion_check_was_lost(rt: Runtime) -> None:
    """One commit per run asks for the check: should that message be lost, the run's
    zero counter is what the reconciler finishes it by."""
    h = Harness(rt)
    h.start(diamond(), {"n": 2})
    asked = 0
    while h.queue:
        token = h.queue.popleft()
        outcome = h.process(token)
        asked += outcome.check_completion
        h.act(token, replace(outcome, check_completion=False))  # the request is lost
    assert asked == 1
    assert rt.state.counter(h.run_id) == 0
    assert client.get_run(h.run_id, rt)["status"] == "RUNNING"
    h.reconcile()
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == [2, 1, 2, 2]


def test_a_wide_fan_out_makes_one_completion_check(rt: Runtime) -> None:
    leaves = [transform(f"L{i}") for i in range(40)]
    h = Harness(rt)
    h.start(
        {
            "nodes": [transform("A"), *leaves],
            "edges": [{"from": "A", "to": leaf["id"]} for leaf in leaves],
        },
        {},
    )
    assert h.drain()["status"] == "COMPLETED"
    assert h.completion_checks == 1


def test_a_run_rebuilt_after_a_recorded_arrival_completes_the_join(rt: Runtime) -> None:
    """The arrival that completed D was recorded by C's commit but no event says so until
    D's own commit: the rebuilt run's delivery of C's token records it again itself."""
    h = Harness(rt)
    h.start(diamond(), {"n": 3})
    h.deliver()  # A
    h.deliver()  # B: recorded, with its join_arrived event
    h.deliver()  # C: completes D
    h.lose_hot_state()
    assert [(t.from_node, t.to_node) for t in h.queue] == [("C", "D")]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == [3, 1, 3, 2]


def test_a_node_is_given_the_run_inputs_and_ctx_only_when_it_reads_them(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(diamond(transform("D", "[inputs.n, ctx.A, size(input)]")), {"n": 7})
    begin = rt.state.begin
    given: dict[str, Any] = {}

    def watched(token: Any, *args: Any, **kwargs: Any) -> Any:
        began = begin(token, *args, **kwargs)
        given[token.to_node] = (began.inputs, began.context)
        return began

    rt.state.begin = watched  # type: ignore[method-assign]
    try:
        doc = h.drain()
    finally:
        rt.state.begin = begin  # type: ignore[method-assign]
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == [7, [7], 2]
    assert given["A"] == ({"n": 7}, None)  # an entry node's input is the run's inputs
    assert given["B"] == given["C"] == (None, None)
    assert given["D"][0] == {"n": 7} and given["D"][1]["A"] == [7]


def test_dead_arrivals_are_recorded_by_the_commit_of_the_node_that_did_not_take_them(
    rt: Runtime,
) -> None:
    """A -> B -> J live, A -> C -> J never taken: no separate join_arrive call is made,
    whichever of B and C commits first, and J runs once with B's output."""
    definition = {
        "nodes": [
            transform("A", "[1]"),
            transform("B", "input + [2]"),
            transform("C", "input + [3]"),
            {"id": "J", "type": "aggregate", "config": {"strategy": "concat"}},
        ],
        "edges": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "C"},
            {"from": "B", "to": "J"},
            {"from": "C", "to": "J", "condition": "false"},
        ],
    }
    for pick in (lambda q: q.popleft(), lambda q: q.pop()):
        h = Harness(rt)
        h.start(definition, {})
        h.deliver()  # A -> B, C
        arrive = rt.state.arrive
        rt.state.arrive = None  # type: ignore[assignment,method-assign]
        try:
            h.deliver(pick)
            h.deliver(pick)
        finally:
            rt.state.arrive = arrive  # type: ignore[method-assign]
        doc = h.drain()
        assert doc["status"] == "COMPLETED", doc["error"]
        assert doc["nodes"]["J"]["output"] == [1, 2]
        assert doc["nodes"]["J"]["attempts"] == 1
