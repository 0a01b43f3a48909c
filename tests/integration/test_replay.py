"""Replay against the real Redis and PostgreSQL, tokens delivered by hand
(tests/harness.py): ended runs against PostgreSQL, runs stopped mid-flight against Redis
(joins half arrived, a run rebuilt from PostgreSQL), and stored state tampered with by
hand, which replay must report as exactly that difference."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

import wfrunner
from tests.harness import Harness
from tests.integration.test_dead_paths import branch_then_join
from wfrunner import recovery
from wfrunner.engine import keys
from wfrunner.replay import Difference, replay_run
from wfrunner.replay.run import POSTGRESQL, REDIS
from wfrunner.runtime import Runtime

_calls: Counter[str] = Counter()


@wfrunner.handler("t.replay_flaky")
def flaky(value: Any, config: dict[str, Any]) -> Any:
    """Fails the first call for each tag, then echoes."""
    _calls[config["tag"]] += 1
    if _calls[config["tag"]] == 1:
        raise RuntimeError("first call fails")
    return value


def _transform(node_id: str, expression: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "config": {"expression": expression}, **extra}


DIAMOND: dict[str, Any] = {
    "nodes": [
        _transform("A", "input"),
        _transform("B", "{'b': input.x}"),
        _transform("C", "{'c': input.x}"),
        {"id": "D", "type": "aggregate", "config": {"strategy": "merge"}},
    ],
    "edges": [
        {"from": "A", "to": "B"},
        {"from": "A", "to": "C"},
        {"from": "B", "to": "D"},
        {"from": "C", "to": "D"},
    ],
}

LOOP: dict[str, Any] = {
    "nodes": [
        _transform("start", "{'n': 0}"),
        {
            "id": "count",
            "type": "loop",
            "config": {
                "expression": "{'n': input.n + 1}",
                "max_iterations": 5,
                "loop_back_to": "count",
                "condition": "iteration < 2",
                "break_path": ["done"],
                "timeout_path": ["late"],
            },
        },
        _transform("done", "input"),
        _transform("late", "input"),
    ],
    "edges": [{"from": "start", "to": "count"}],
}


def _replayed(rt: Runtime, run_id: str, source: str) -> None:
    report = replay_run(run_id, rt)
    assert report.source == source
    assert report.differences == [], "\n".join(report.lines())


def test_a_completed_diamond_replays_as_stored(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(DIAMOND, {"x": 1})
    assert h.drain()["status"] == "COMPLETED"
    _replayed(rt, h.run_id, POSTGRESQL)


def test_a_branch_with_a_dead_path_replays_as_stored(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(branch_then_join(deep=True), {"x": 5})
    assert h.drain()["status"] == "COMPLETED"
    report = replay_run(h.run_id, rt)
    assert report.differences == []
    assert report.state.node_statuses()["C2"] == "SKIPPED"


def test_a_loop_replays_each_pass(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(LOOP)
    doc = h.drain()
    assert doc["nodes"]["count"]["iterations"] == 2
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())
    assert report.state.loops == {"count": 2}


def test_a_retried_node_replays_with_both_attempts(rt: Runtime) -> None:
    flaky_node = {
        "id": "F",
        "type": "function",
        "config": {"function_name": "t.replay_flaky", "tag": rt.database_url},
        "retry": {"max_attempts": 3, "backoff_ms": 0},
    }
    h = Harness(rt)
    h.start({"nodes": [_transform("A", "input"), flaky_node], "edges": [{"from": "A", "to": "F"}]})
    assert h.drain()["nodes"]["F"]["attempts"] == 2
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())
    assert [(e.node_id, e.attempt) for e in report.state.executions] == [("A", 1), ("F", 2)]


def test_a_failed_run_replays_as_stored(rt: Runtime) -> None:
    boom = {"id": "B", "type": "transform", "config": {"expression": "1 / 0"}}
    h = Harness(rt)
    h.start(
        {
            "nodes": [_transform("A", "input"), boom, _transform("C", "input")],
            "edges": [{"from": "A", "to": "B"}, {"from": "B", "to": "C"}],
        }
    )
    assert h.drain()["status"] == "FAILED"
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())
    assert report.state.counter == 1  # B's token never consumed


def test_a_diamond_mid_flight_replays_as_redis_holds_it(rt: Runtime) -> None:
    """After A, B and C: D's finisher waits in the outbox, the join holds both arrivals."""
    h = Harness(rt)
    h.start(DIAMOND, {"x": 1})
    for _ in range(3):
        h.deliver()
    report = replay_run(h.run_id, rt)
    assert report.source == REDIS
    assert report.differences == [], "\n".join(report.lines())
    assert report.state.counter == 1
    assert report.state.joins["D|#n"] == "2"


def test_a_run_rebuilt_from_postgresql_replays_as_redis_holds_it(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(DIAMOND, {"x": 1})
    for _ in range(3):
        h.deliver()
    h.lose_hot_state()
    _replayed(rt, h.run_id, REDIS)
    assert h.drain()["status"] == "COMPLETED"
    _replayed(rt, h.run_id, POSTGRESQL)


def test_a_counter_changed_by_hand_is_the_one_difference(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(DIAMOND, {"x": 1})
    h.deliver()
    rt.redis.incrby(keys.counter_key(h.run_id), 3)
    report = replay_run(h.run_id, rt)
    assert report.differences == [Difference("redis.counter", 2, 5)]
    assert str(report.differences[0]) == "redis.counter: replayed 2, stored 5"


@pytest.mark.parametrize(
    "statement, difference",
    [
        (
            "UPDATE node_executions SET status = 'FAILED' WHERE run_id = :run AND node_id = 'C'",
            Difference("node_executions[C iteration 1 attempt 1].status", "COMPLETED", "FAILED"),
        ),
        (
            "DELETE FROM node_executions WHERE run_id = :run AND node_id = 'B'",
            Difference("node_executions[B iteration 1 attempt 1]", "COMPLETED", "absent"),
        ),
        (
            "UPDATE run_statistics SET nodes_executed = 7 WHERE run_id = :run",
            Difference("run_statistics.nodes_executed", 4, 7),
        ),
    ],
    ids=["status-changed", "row-deleted", "statistic-changed"],
)
def test_a_stored_row_changed_by_hand_is_the_one_difference(
    rt: Runtime, statement: str, difference: Difference
) -> None:
    h = Harness(rt)
    h.start(DIAMOND, {"x": 1})
    h.drain()
    engine = sa.create_engine(rt.database_url)
    with engine.begin() as connection:
        connection.execute(sa.text(statement), {"run": h.run_id})
    engine.dispose()
    assert replay_run(h.run_id, rt).differences == [difference]


def test_a_join_fired_by_its_dead_arrival_replays_mid_flight_and_rebuilt(rt: Runtime) -> None:
    """A -> B, C; B -> D; C -> D never taken. B arrives first, so C's dead arrival
    completes D and C's commit sends D a payload-less fire token."""
    definition = {**DIAMOND, "edges": [*DIAMOND["edges"][:3], {**DIAMOND["edges"][3]}]}
    definition["edges"][3]["condition"] = "false"
    h = Harness(rt)
    h.start(definition, {"x": 1})
    for _ in range(3):
        h.deliver()
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())
    (fire,) = report.state.pending.values()
    assert (fire.from_node, fire.to_node, fire.payload_ref) == ("C", "D", None)
    assert report.state.joins["D|#fin"] == "C"
    h.lose_hot_state()
    _replayed(rt, h.run_id, REDIS)
    assert h.drain()["status"] == "COMPLETED"
    _replayed(rt, h.run_id, POSTGRESQL)


def test_a_run_resumed_from_a_dead_letter_replays_as_stored(rt: Runtime) -> None:
    """F fails (no retry policy), its dead letter is retried, the run completes: the log
    holds a failure, run_resumed, then the rest."""
    tag = f"resume-{rt.database_url}"
    flaky_node = {
        "id": "F",
        "type": "function",
        "config": {"function_name": "t.replay_flaky", "tag": tag},
    }
    h = Harness(rt)
    h.start({"nodes": [_transform("A", "input"), flaky_node], "edges": [{"from": "A", "to": "F"}]})
    assert h.drain()["status"] == "FAILED"
    _replayed(rt, h.run_id, POSTGRESQL)
    (letter,) = rt.store.list_dead_letters()
    _, tokens = recovery.retry_dead_letter(rt, letter.id)
    _replayed(rt, h.run_id, REDIS)
    h.queue.extend(tokens)
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    report = replay_run(h.run_id, rt)
    assert report.differences == [], "\n".join(report.lines())
    assert (report.state.status, report.state.error) == ("COMPLETED", None)
