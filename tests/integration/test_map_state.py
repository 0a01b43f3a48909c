"""Map nodes (config.map_over) against the real Redis and PostgreSQL, one delivery at a
time: items redelivered, finished out of order, the finisher delivered twice; the counter
always returns to 0 and the successor fires once."""

from __future__ import annotations

import os
from typing import Any

import wfrunner
from tests.entry_point import invoke
from tests.harness import Harness
from wfrunner import recovery
from wfrunner.context import NodeContext
from wfrunner.control import cancel_run
from wfrunner.engine import keys, mapping, mapstate
from wfrunner.engine.tokens import Token
from wfrunner.replay import replay_run
from wfrunner.runtime import Runtime


def mapped(cap: int = 2, over: str = "input.xs", after: bool = True) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "A", "type": "transform", "config": {"expression": "input"}},
        {
            "id": "M",
            "type": "transform",
            "config": {"map_over": over, "max_concurrency": cap, "expression": "input * 10"},
        },
    ]
    edges = [{"from": "A", "to": "M"}]
    if after:
        nodes.append({"id": "Z", "type": "transform", "config": {"expression": "input"}})
        edges.append({"from": "M", "to": "Z"})
    return {"nodes": nodes, "edges": edges}


def items_in_flight(rt: Runtime, run_id: str) -> list[int]:
    roles = [mapping.role("M", t) for t in rt.state.pending(run_id).values() if t.to_node == "M"]
    return sorted(r.index for r in roles if r.index is not None)


def test_items_run_at_most_cap_at_a_time_and_gather_in_order(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(cap=2), {"xs": [1, 2, 3, 4, 5]})
    h.deliver()  # A
    head = h.deliver()  # M's head: items 0 and 1
    assert [mapping.role("M", t).index for t in head.dispatch] == [0, 1]
    assert rt.state.counter(h.run_id) == 2
    # item 1 finishes before item 0: it emits item 3 (1 + cap)
    one = h.deliver(lambda q: _take(q, 1))
    assert [mapping.role("M", t).index for t in one.dispatch] == [3]
    assert items_in_flight(rt, h.run_id) == [0, 3]
    h.deliver(lambda q: _take(q, 3))  # 3 done: 3 + 2 is past the end, nothing emitted
    assert items_in_flight(rt, h.run_id) == [0]
    assert rt.state.counter(h.run_id) == 1
    h.deliver(lambda q: _take(q, 0))  # emits item 2
    h.deliver(lambda q: _take(q, 2))  # emits item 4
    last = h.deliver(lambda q: _take(q, 4))  # the last result: the finish token
    assert [mapping.role("M", t).kind for t in last.dispatch] == [mapping.FINISH]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["M"]["output"] == [10, 20, 30, 40, 50]
    assert doc["nodes"]["Z"]["output"] == [10, 20, 30, 40, 50]
    assert doc["nodes"]["M"]["items"] == {"total": 5, "done": 5}
    assert h.completion_checks == 1
    assert rt.state.counter(h.run_id) is None or rt.state.counter(h.run_id) == 0


def _take(queue: Any, index: int) -> Token:
    for token in queue:
        if mapping.role("M", token).index == index:
            queue.remove(token)
            return token
    raise AssertionError(f"item {index} is not queued: {list(queue)}")


def test_a_redelivered_item_is_counted_once(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(cap=3), {"xs": [1, 2, 3]})
    h.deliver()
    h.deliver()
    item = h.queue[0]
    h.deliver()
    copy = h.process(item)  # a broker's duplicate of item 0
    assert copy.ignored == "token already committed (duplicate or late delivery)"
    assert rt.state.counter(h.run_id) == 2
    done = rt.redis.hget(keys.maps_key(h.run_id), "M|#done")
    assert done == "1"
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [10, 20, 30]
    assert h.completion_checks == 1


def test_the_finish_token_delivered_twice_fires_the_successor_once(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(cap=2), {"xs": [7, 8]})
    for _ in range(4):  # A, the head, both items
        h.deliver()
    finish = h.queue[0]
    assert mapping.role("M", finish).kind == mapping.FINISH
    first = h.deliver()
    assert [t.to_node for t in first.dispatch] == ["Z"]
    again = h.process(finish)
    assert again.dispatch == [] and again.ignored
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [70, 80]
    emitted_to_z = [k for k in h.dispatched if "->Z@" in k]
    assert len(emitted_to_z) == 1
    assert h.completion_checks == 1


def test_an_empty_list_completes_at_once_with_an_empty_list(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(), {"xs": []})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["M"]["output"] == []
    assert doc["nodes"]["Z"]["output"] == []


def test_a_list_over_the_limit_fails_the_node(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(over="input.xs"), {"xs": list(range(rt.executor.limits.max_map_items + 1))})
    doc = h.drain()
    assert doc["status"] == "FAILED"
    assert "config.map_over" in doc["error"] and "WFRUNNER_MAX_MAP_ITEMS" in doc["error"]


def test_map_over_giving_no_list_fails_the_node(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(over="input.n"), {"n": 3})
    doc = h.drain()
    assert doc["status"] == "FAILED"
    assert doc["error"] == (
        "node 'M' failed: config.map_over: CEL expression 'input.n': gave a number, not a list"
    )


def test_a_run_rebuilt_mid_map_runs_the_items_left_and_no_more(rt: Runtime) -> None:
    """Redis loses the run while items are in flight: the rebuild (from the events in
    PostgreSQL) publishes the items emitted and not done, never a done one again."""
    h = Harness(rt)
    h.start(mapped(cap=2), {"xs": [1, 2, 3, 4, 5]})
    h.deliver()  # A
    h.deliver()  # head: items 0, 1
    h.deliver(lambda q: _take(q, 1))  # item 1 done: item 3 emitted
    h.lose_hot_state()
    assert sorted(mapping.role("M", t).index or 0 for t in h.queue) == [0, 3]
    assert rt.state.counter(h.run_id) == 2
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [10, 20, 30, 40, 50]
    assert doc["nodes"]["M"]["items"] == {"total": 5, "done": 5}
    assert h.completion_checks == 1


def test_a_run_rebuilt_after_the_last_item_sends_the_finish_token_again(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(cap=2), {"xs": [1, 2]})
    for _ in range(4):  # A, head, both items: the finish token is queued
        h.deliver()
    h.lose_hot_state()
    assert [mapping.role("M", t).kind for t in h.queue] == [mapping.FINISH]
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [10, 20]
    assert h.completion_checks == 1


def test_replay_of_a_map_matches_redis_mid_flight_and_postgresql_at_the_end(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(cap=2), {"xs": [1, 2, 3, 4, 5]})
    h.deliver()
    h.deliver()
    h.deliver(lambda q: _take(q, 1))
    h.deliver(lambda q: _take(q, 0))
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())
    h.lose_hot_state()  # the rebuilt state too
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())


def test_an_items_commit_sent_twice_records_its_result_once(rt: Runtime) -> None:
    """The reply of an item's commit is lost and the call sent again: the second call is
    answered as the first, the result is counted once and the next item emitted once."""
    h = Harness(rt)
    h.start(mapped(cap=1), {"xs": [1, 2, 3]})
    h.deliver()
    h.deliver()  # the head: item 0 only
    commit = mapstate.commit
    replies: list[Any] = []

    def twice(*args: Any, **kwargs: Any) -> Any:
        replies.append(commit(*args, **kwargs))
        replies.append(commit(*args, **kwargs))
        return replies[-1]

    mapstate.commit = twice  # type: ignore[assignment]
    try:
        outcome = h.deliver()  # item 0
    finally:
        mapstate.commit = commit  # type: ignore[assignment]
    assert [mapping.role("M", t).index for t in outcome.dispatch] == [1]
    assert replies[0].changed and not replies[1].changed and replies[1].mine
    assert rt.state.counter(h.run_id) == 1
    assert rt.redis.hget(keys.maps_key(h.run_id), "M|#done") == "1"
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [10, 20, 30]
    assert h.completion_checks == 1


def test_status_shows_a_maps_items_done(rt: Runtime, redis_url: str, database_url: str) -> None:
    h = Harness(rt)
    h.start(mapped(cap=2), {"xs": [1, 2, 3]})
    h.deliver()
    h.deliver()
    h.deliver()  # item 0
    env = {**os.environ, "WFRUNNER_REDIS_URL": redis_url, "WFRUNNER_DATABASE_URL": database_url}
    shown = invoke("status", h.run_id, env=env).stdout
    assert "RUNNING 1/3 items" in shown, shown
    traced = invoke("trace", h.run_id, env=env).stdout
    assert "map_started" in traced and "total=3" in traced and "concurrency=2" in traced
    assert "index=0" in traced and "input_ref" not in traced, traced


def test_a_map_node_that_is_a_join_maps_over_its_joined_input(rt: Runtime) -> None:
    definition = {
        "nodes": [
            {"id": "A", "type": "transform", "config": {"expression": "inputs.n"}},
            {"id": "B", "type": "transform", "config": {"expression": "input + 1"}},
            {"id": "C", "type": "transform", "config": {"expression": "input + 2"}},
            {
                "id": "M",
                "type": "transform",
                "config": {"map_over": "[input.B, input.C]", "expression": "input * 10"},
            },
            {"id": "Z", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "C"},
            {"from": "B", "to": "M"},
            {"from": "C", "to": "M"},
            {"from": "M", "to": "Z"},
        ],
    }
    h = Harness(rt)
    h.start(definition, {"n": 1})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [20, 30]
    assert doc["nodes"]["M"]["attempts"] == 1
    assert h.completion_checks == 1


def test_a_map_node_in_a_loop_maps_each_pass_on_its_own(rt: Runtime) -> None:
    definition = {
        "nodes": [
            {"id": "A", "type": "transform", "config": {"expression": "inputs.xs"}},
            {
                "id": "M",
                "type": "transform",
                "config": {"map_over": "input", "max_concurrency": 2, "expression": "input * 10"},
            },
            {
                "id": "L",
                "type": "loop",
                "config": {"max_iterations": 3, "condition": "iteration < 2", "loop_back_to": "M"},
            },
            {"id": "Z", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "A", "to": "M"}, {"from": "M", "to": "L"}, {"from": "L", "to": "Z"}],
    }
    h = Harness(rt)
    h.start(definition, {"xs": [1, 2, 3]})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [100, 200, 300]
    assert doc["nodes"]["M"]["iterations"] == 2
    assert doc["nodes"]["M"]["items"] == {"total": 3, "done": 3}
    assert h.completion_checks == 1
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())


#: run id -> elements that failed once (the handler below)
_failed_once: set[tuple[str, int]] = set()


@wfrunner.handler("t.map_fails_once")
def _fails_once(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    if value == config["fail_on"] and (ctx.run_id, value) not in _failed_once:
        _failed_once.add((ctx.run_id, value))
        raise RuntimeError(f"element {value} failed")
    return value + 100


def test_a_dead_letter_of_an_element_resumes_the_map(rt: Runtime) -> None:
    """An element fails for good: the run fails with a dead letter for that element;
    retrying the letter runs the elements left (not those done) and completes the map."""
    definition = mapped(cap=2)
    definition["nodes"][1] = {
        "id": "M",
        "type": "function",
        "config": {
            "function_name": "t.map_fails_once",
            "map_over": "input.xs",
            "max_concurrency": 2,
            "fail_on": 2,
        },
    }
    h = Harness(rt)
    h.start(definition, {"xs": [1, 2, 3, 4]})
    doc = h.drain()
    assert doc["status"] == "FAILED" and "element 2 failed" in doc["error"]
    assert doc["nodes"]["M"]["status"] == "FAILED"
    (letter,) = rt.store.list_dead_letters()
    _, tokens = recovery.retry_dead_letter(rt, letter.id)
    assert sorted(mapping.role("M", t).index or 0 for t in tokens) == [1, 2]
    h.queue.extend(tokens)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["M"]["status"] == "COMPLETED"
    assert doc["nodes"]["Z"]["output"] == [101, 102, 103, 104]
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())


def test_a_run_cancelled_mid_map_ends_cancelled_with_its_items_cut_short(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(mapped(cap=2), {"xs": [1, 2, 3]})
    h.deliver()
    h.deliver()
    h.deliver()  # item 0 done; items 1 and 2 in flight
    doc = cancel_run(h.run_id, "enough", terminate=False, rt=rt)
    assert doc["status"] == "CANCELLED"
    # no element was running: as for any node whose token was queued, SKIPPED; items
    # tells how far it got
    assert doc["nodes"]["M"]["status"] == "SKIPPED"
    assert doc["nodes"]["M"]["items"] == {"total": 3, "done": 1}
    cut = [e for e in rt.store.list_events(h.run_id) if e.type == "run_cancelled"]
    assert sorted(c["node"] for c in cut[0].data["cut_short"]) == ["M", "M"]
    assert h.drain()["status"] == "CANCELLED"  # the items left are dropped


def test_map_over_may_read_the_runs_inputs_and_ctx(rt: Runtime) -> None:
    definition = mapped(over="inputs.xs + ctx.A.more", after=True)
    h = Harness(rt)
    h.start(definition, {"xs": [1], "more": [2, 3]})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [10, 20, 30]


def test_an_item_whose_worker_died_before_dispatching_sends_its_next_item_again(
    rt: Runtime,
) -> None:
    """Item 0 commits (emitting item 1) and its worker dies before publishing: the same
    message delivered again publishes item 1, and nothing is run twice."""
    h = Harness(rt)
    h.start(mapped(cap=1), {"xs": [1, 2]})
    h.deliver()
    h.deliver()
    item = h.queue.popleft()
    ir = rt.ir(h.workflow_id)
    first = rt.executor.process(ir, item, nonce="task-1")
    assert [mapping.role("M", t).index for t in first.dispatch] == [1]  # never published
    again = rt.executor.process(ir, item, nonce="task-1")
    assert [mapping.role("M", t).index for t in again.dispatch] == [1]
    assert again.ran is None
    h.queue.extend(again.dispatch)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["Z"]["output"] == [10, 20]
    assert doc["nodes"]["M"]["items"] == {"total": 2, "done": 2}
