"""Join rules (docs/dsl.md, "Join rules") on the real Redis and PostgreSQL, every arrival
order delivered by hand, with duplicates: the join fires exactly once, on the arrival
its rule names, with the live inputs in when it fired; a join whose rule never held is
skipped and the run completes."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import pytest

from tests.fault.checks import Report, check_history
from tests.harness import Harness
from wfrunner import client
from wfrunner.compiler import compile_workflow
from wfrunner.engine.tokens import Token
from wfrunner.replay.run import replay_run
from wfrunner.runtime import Runtime


def transform(node_id: str, expression: str = "input") -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"expression": expression}}


def fan_in(join: Any, live: tuple[str, ...] = ("B1", "B2", "B3")) -> dict[str, Any]:
    """A -> B1, B2, B3 -> J -> K; a branch not in ``live`` is not taken (a dead path)."""
    branches = ("B1", "B2", "B3")
    nodes = [transform("A", "input.n")]
    nodes += [transform(b, f"input * 10 + {i}") for i, b in enumerate(branches, 1)]
    nodes += [{**transform("J"), "join": join}, transform("K")]
    edges: list[dict[str, Any]] = []
    for b in branches:
        edge: dict[str, Any] = {"from": "A", "to": b}
        if b not in live:
            edge["condition"] = "false"
        edges.append(edge)
    edges += [{"from": b, "to": "J"} for b in branches] + [{"from": "J", "to": "K"}]
    return {"nodes": nodes, "edges": edges}


def run_in_order(rt: Runtime, definition: dict[str, Any], order: tuple[str, ...]) -> Harness:
    """Start, run A, then deliver the branches in ``order`` (each twice: a duplicate right
    after it), then drain."""
    h = Harness(rt)
    h.start(definition, {"n": 1})
    h.deliver()  # A
    branch = {t.to_node: t for t in h.queue}
    h.queue = deque(t for t in h.queue if t.to_node not in branch)
    for name in order:
        if name not in branch:
            continue
        token: Token = branch[name]
        h.act(token, h.process(token))
        h.act(token, h.process(token))  # the broker delivers it again
    h.drain()
    return h


def started(rt: Runtime, run_id: str, node: str) -> int:
    events = rt.state.events(run_id)
    return sum(1 for e in events if e["type"] == "node_started" and e["node"] == node)


ORDERS = list(itertools.permutations(("B1", "B2", "B3")))


@pytest.mark.parametrize("order", ORDERS)
def test_any_fires_once_on_the_first_live_arrival(rt: Runtime, order: tuple[str, ...]) -> None:
    h = run_in_order(rt, fan_in("any"), order)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    first = order[0]
    assert doc["nodes"]["J"]["output"] == {first: 10 + int(first[1])}
    assert doc["nodes"]["K"]["output"] == doc["nodes"]["J"]["output"]
    assert doc["nodes"]["J"]["attempts"] == 1 and doc["nodes"]["K"]["attempts"] == 1
    arrived = [e for e in rt.store.list_events(h.run_id) if e.type == "join_arrived"]
    late = [e.data.get("from") for e in arrived if e.data.get("late")]
    assert sorted(late) == sorted(order[1:])  # the others came after it fired: dropped


@pytest.mark.parametrize("order", ORDERS)
def test_at_least_two_of_three(rt: Runtime, order: tuple[str, ...]) -> None:
    h = run_in_order(rt, fan_in({"at_least": 2}), order)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    # the input is the live arrivals when it fired (not the third, which came later)
    assert set(doc["nodes"]["J"]["output"]) == set(order[:2])
    assert doc["nodes"]["K"]["attempts"] == 1


@pytest.mark.parametrize("order", ORDERS)
def test_at_least_two_with_one_live_path_skips_the_join(
    rt: Runtime, order: tuple[str, ...]
) -> None:
    h = run_in_order(rt, fan_in({"at_least": 2}, live=("B2",)), order)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["status"] == "SKIPPED"
    assert doc["nodes"]["K"]["status"] == "SKIPPED"
    assert "at_least 2 never held" in doc["nodes"]["J"]["reason"]
    assert doc["nodes"]["B2"]["status"] == "COMPLETED"


@pytest.mark.parametrize("order", ORDERS)
def test_any_with_dead_paths_fires_on_the_live_one(rt: Runtime, order: tuple[str, ...]) -> None:
    h = run_in_order(rt, fan_in("any", live=("B3",)), order)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["output"] == {"B3": 13}
    assert doc["nodes"]["K"]["attempts"] == 1


COND = {"condition": "has(arrived.B3) || count >= 2"}


@pytest.mark.parametrize("order", ORDERS)
def test_condition_fires_when_it_holds(rt: Runtime, order: tuple[str, ...]) -> None:
    h = run_in_order(rt, fan_in(COND), order)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    # B3 fires it at once; else the second arrival does
    want = order[: order.index("B3") + 1] if order.index("B3") < 2 else order[:2]
    assert set(doc["nodes"]["J"]["output"]) == set(want)
    assert doc["nodes"]["J"]["attempts"] == 1 and doc["nodes"]["K"]["attempts"] == 1
    assert started(rt, h.run_id, "K") <= 1


@pytest.mark.parametrize("order", ORDERS)
def test_condition_that_never_holds_skips_the_join(rt: Runtime, order: tuple[str, ...]) -> None:
    h = run_in_order(rt, fan_in({"condition": "count >= 2"}, live=("B1",)), order)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["status"] == "SKIPPED"
    assert "condition 'count >= 2' never held" in doc["nodes"]["J"]["reason"]


def test_a_condition_fired_by_a_dead_arrival(rt: Runtime) -> None:
    """``dead`` counts too: the dead arrival that makes it hold fires the join."""
    definition = fan_in({"condition": "count + dead == expected"}, live=("B1", "B2"))
    h = run_in_order(rt, definition, ("B1", "B2"))
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["output"] == {"B1": 11, "B2": 12}


def test_a_rule_join_survives_a_rebuild_from_postgresql(rt: Runtime) -> None:
    """Redis loses the run after the first arrival fired the join: the rebuilt run fires
    it once, with the same input, and drops the later arrivals."""
    h = Harness(rt)
    h.start(fan_in({"at_least": 2}), {"n": 1})
    h.deliver()  # A
    h.deliver()  # B1: waits
    h.deliver()  # B2: fires J (its token to J is sent)
    h.lose_hot_state()
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["output"] == {"B1": 11, "B2": 12}
    assert doc["nodes"]["K"]["attempts"] == 1


def test_a_condition_decided_on_a_stale_read_is_refused_and_decided_again(
    rt: Runtime,
) -> None:
    """B2 reads the join (B1 in), then B3's commit gets in first and fires it: B2's commit,
    decided on its read, is refused and decided again: B2 arrives late, J fires once."""
    h = Harness(rt)
    h.start(fan_in({"condition": "count >= 2"}), {"n": 1})
    h.deliver()  # A
    branch = {t.to_node: t for t in h.queue}
    h.queue.clear()
    h.act(branch["B1"], h.process(branch["B1"]))
    read = rt.state.join_fields
    cut_in: list[bool] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        fields = read(*args, **kwargs)
        if not cut_in:
            cut_in.append(True)
            h.act(branch["B3"], h.process(branch["B3"]))  # fires J: {B1, B3}
        return fields

    rt.state.join_fields = racing  # type: ignore[method-assign]
    try:
        h.act(branch["B2"], h.process(branch["B2"]))
    finally:
        del rt.state.join_fields
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["output"] == {"B1": 11, "B3": 13}
    assert doc["nodes"]["J"]["attempts"] == 1 and doc["nodes"]["K"]["attempts"] == 1
    late = [e.data.get("from") for e in rt.store.list_events(h.run_id) if e.data.get("late")]
    assert late == ["B2"]


def cancel_race() -> dict[str, Any]:
    """A -> FAST -> J; A -> S1 -> S2 -> J; J (any, cancel) -> K."""
    return {
        "nodes": [
            transform("A", "input.n"),
            transform("FAST", "input + 1"),
            transform("S1", "input + 10"),
            transform("S2", "input + 100"),
            {**transform("J"), "join": "any", "join_rest": "cancel"},
            transform("K"),
        ],
        "edges": [
            {"from": "A", "to": "FAST"},
            {"from": "A", "to": "S1"},
            {"from": "S1", "to": "S2"},
            {"from": "FAST", "to": "J"},
            {"from": "S2", "to": "J"},
            {"from": "J", "to": "K"},
        ],
    }


def test_cancel_cuts_the_slow_branch_short(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(cancel_race(), {"n": 1})
    h.deliver()  # A: FAST and S1 queued
    s1 = next(t for t in h.queue if t.to_node == "S1")
    h.queue.remove(s1)
    h.deliver()  # FAST fires J
    j = h.queue.popleft()
    h.act(j, h.process(j))  # J runs, and cuts S1's token short
    h.act(j, h.process(j))  # a duplicate of J's message: nothing new
    assert rt.state.pending(h.run_id).keys() == {t.key for t in h.queue}
    outcome = h.process(s1)  # S1's message comes: its token was cut
    assert outcome.ignored and outcome.ran is None
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["J"]["output"] == {"FAST": 2}
    assert doc["nodes"]["K"]["attempts"] == 1
    assert doc["nodes"]["S1"]["status"] == "SKIPPED"
    assert doc["nodes"]["S1"]["reason"] == "cut short: join 'J' fired (join_rest cancel)"
    assert doc["nodes"]["S2"]["status"] == "SKIPPED"
    cut = [e for e in rt.store.list_events(h.run_id) if e.type == "node_skipped"]
    assert [(e.node_id, e.data.get("was")) for e in cut] == [("S1", "queued")]


def test_cancel_survives_a_rebuild(rt: Runtime) -> None:
    """Redis is lost after J cut S1: the rebuilt run does not bring S1's token back."""
    h = Harness(rt)
    h.start(cancel_race(), {"n": 1})
    h.deliver()  # A
    s1 = next(t for t in h.queue if t.to_node == "S1")
    h.queue.remove(s1)
    h.deliver()  # FAST fires J
    h.deliver()  # J runs, cuts S1
    h.lose_hot_state()
    assert all(t.to_node != "S1" for t in h.queue)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["K"]["attempts"] == 1
    assert doc["nodes"]["S1"]["status"] == "SKIPPED"


@pytest.mark.parametrize(
    "definition",
    [
        fan_in("any"),
        fan_in({"at_least": 2}, live=("B2",)),
        fan_in({"condition": "count + dead == expected"}, live=("B1", "B2")),
        cancel_race(),
    ],
)
def test_replay_agrees_with_the_stored_state(rt: Runtime, definition: dict[str, Any]) -> None:
    """``wfrunner replay`` folds a run with a join rule into what Redis holds mid-run and
    PostgreSQL holds at the end."""
    h = Harness(rt)
    h.start(definition, {"n": 1})
    for _ in range(4):
        h.deliver()
        if not h.queue:
            break
        assert replay_run(h.run_id, rt).differences == []
    h.drain()
    assert client.get_run(h.run_id, rt)["status"] == "COMPLETED"
    assert replay_run(h.run_id, rt).differences == []
    report = Report()  # each token emitted and consumed once, the executions agree
    assert check_history(rt, h.run_id, report) and not report.problems, report


def test_cancel_leaves_no_feeder_join_waiting_even_after_a_rebuild(rt: Runtime) -> None:
    """X, a join among J's feeders, has one of its two inputs when J fires and cuts the
    other branch: X waits for nothing more, in Redis and in a run rebuilt from
    PostgreSQL."""
    definition = {
        "nodes": [
            transform("A", "input.n"),
            transform("FAST", "input + 1"),
            transform("S1", "input + 10"),
            transform("S2", "input + 20"),
            transform("X"),
            {**transform("J"), "join": "any", "join_rest": "cancel"},
            transform("K"),
        ],
        "edges": [
            {"from": "A", "to": "FAST"},
            {"from": "A", "to": "S1"},
            {"from": "A", "to": "S2"},
            {"from": "S1", "to": "X"},
            {"from": "S2", "to": "X"},
            {"from": "X", "to": "J"},
            {"from": "FAST", "to": "J"},
            {"from": "J", "to": "K"},
        ],
    }
    join = compile_workflow(definition).nodes["J"].join
    # every node here leads only into J (A and FAST too: done before J can fire)
    assert join is not None and join.cut == ("A", "FAST", "S1", "S2", "X")
    for rebuild in (False, True):
        h = Harness(rt)
        h.start(definition, {"n": 1})
        h.deliver()  # A: FAST, S1, S2 queued
        s1 = next(t for t in h.queue if t.to_node == "S1")
        h.queue.remove(s1)
        h.act(s1, h.process(s1))  # S1 arrives at X: X waits for S2
        h.deliver()  # FAST fires J
        s2 = next(t for t in h.queue if t.to_node == "S2")
        h.queue.remove(s2)
        h.deliver()  # J runs and cuts S2
        if rebuild:
            h.lose_hot_state()
        doc = h.drain()
        assert doc["status"] == "COMPLETED", doc["error"]
        assert doc["nodes"]["X"]["status"] == "SKIPPED"
        assert doc["nodes"]["S2"]["reason"] == "cut short: join 'J' fired (join_rest cancel)"


def test_join_arrive_applies_the_rule_for_a_rebuilt_runs_arrivals(rt: Runtime) -> None:
    """lua/join_arrive.lua, which records an arrival its delivery finds unrecorded (a run
    rebuilt from PostgreSQL): the rule fires once, a repeat answers the same, an arrival
    that completes the join without the rule holding is its closer, and a condition
    decided on a stale count is refused."""
    h = Harness(rt)
    h.start(fan_in("any"), {"n": 1})
    epoch = rt.state.meta(h.run_id)["epoch"]

    def arrive(instance: str, src: str, value: str, rule: tuple[int, str, int]) -> Any:
        return rt.state.arrive(h.run_id, instance, src, value, 3, epoch, "", rule)

    two = (2, "", 0)
    assert not arrive("X|", "B1", "-", two).complete
    assert not arrive("X|", "B2", "r2", two).complete
    fired = arrive("X|", "B3", "r3", two)
    assert (fired.complete, fired.finisher, fired.at) == (True, "B3", ("B2", "B3"))
    assert arrive("X|", "B3", "r3", two) == fired  # a redelivery: the same answer
    assert arrive("Y|", "B1", "-", two).complete is False
    assert arrive("Y|", "B2", "r2", two).closer is None
    closed = arrive("Y|", "B3", "-", two)
    assert (closed.complete, closed.finisher, closed.closer) == (True, None, "B3")
    assert arrive("Z|", "B1", "r1", (0, "hold", 0)).finisher is None
    assert arrive("Z|", "B2", "r2", (0, "fire", 0)).state == "conflict"  # Z holds 1 now
    decided = arrive("Z|", "B2", "r2", (0, "fire", 1))
    assert (decided.finisher, decided.at) == ("B2", ("B1", "B2"))


def test_a_condition_that_cannot_be_evaluated_fails_the_run_naming_the_join(
    rt: Runtime,
) -> None:
    h = Harness(rt)
    h.start(fan_in({"condition": "arrived.B1.x > 0"}), {"n": 1})  # B1's output is a number
    doc = h.drain()
    assert doc["status"] == "FAILED"
    assert "node 'J' join condition" in str(doc["error"]), doc["error"]
