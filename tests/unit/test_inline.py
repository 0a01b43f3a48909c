"""Fast tests of which emitted tokens a task runs itself (``wfrunner.tasks.inline``): one
successor always when it has nothing else to run, siblings only when their nodes are
quick here and within the hold, never a node with ``timeout_ms``."""

from __future__ import annotations

from typing import Any

from wfrunner.compiler import compile_workflow
from wfrunner.engine.tokens import Token
from wfrunner.tasks.inline import HOLD_S, QUICK_S, Durations, plan

WF = "wf"


def fan_out(width: int, timeout_on: str = "") -> Any:
    nodes: list[dict[str, Any]] = [{"id": "A", "type": "transform", "config": {"expression": "1"}}]
    for i in range(width):
        node: dict[str, Any] = {"id": f"p{i}", "type": "transform", "config": {"expression": "1"}}
        if node["id"] == timeout_on:
            node["timeout_ms"] = 1000
        nodes.append(node)
    edges = [{"from": "A", "to": f"p{i}"} for i in range(width)]
    return compile_workflow({"nodes": nodes, "edges": edges})


def tokens(*nodes: str) -> list[Token]:
    return [Token.entry("run", n).child(n, None) for n in nodes]


def seen(durations: Durations, seconds: float, *nodes: str) -> Durations:
    for node in nodes:
        durations.record(WF, node, seconds)
    return durations


def names(found: list[Token]) -> list[str]:
    return [t.to_node for t in found]


def test_with_nothing_queued_it_goes_on_with_the_first_successor_even_unknown() -> None:
    keep, publish = plan(fan_out(3), WF, tokens("p0", "p1", "p2"), [], Durations())
    assert names(keep) == ["p0"]
    assert names(publish) == ["p1", "p2"]


def test_quick_siblings_are_kept_slow_and_unknown_ones_published() -> None:
    durations = seen(Durations(), 0.001, "p1")
    seen(durations, 0.5, "p2")  # slow: waiting for this task would cost p2's siblings more
    keep, publish = plan(fan_out(4), WF, tokens("p0", "p1", "p2", "p3"), [], durations)
    assert names(keep) == ["p0", "p1"]
    assert names(publish) == ["p2", "p3"]


def test_a_node_just_over_quick_is_published() -> None:
    durations = seen(Durations(), QUICK_S * 1.01, "p1")
    _, publish = plan(fan_out(2), WF, tokens("p0", "p1"), [], durations)
    assert names(publish) == ["p1"]


def test_siblings_kept_add_up_to_the_hold_at_most() -> None:
    width = 40
    each = QUICK_S / 2
    durations = seen(Durations(), each, *(f"p{i}" for i in range(width)))
    keep, publish = plan(
        fan_out(width), WF, tokens(*(f"p{i}" for i in range(width))), [], durations
    )
    # the first is followed whatever its time; the hold counts the siblings after it
    assert len(keep) == 1 + int(HOLD_S / each + 1e-9)
    assert len(keep) + len(publish) == width


def test_tokens_already_queued_count_against_the_hold() -> None:
    durations = seen(Durations(), HOLD_S / 2, "p0", "p1", "p2")
    queued = tokens("p0", "p1")
    keep, publish = plan(fan_out(3), WF, tokens("p2"), queued, durations)
    assert keep == []
    assert names(publish) == ["p2"]


def test_a_node_with_timeout_ms_is_always_published() -> None:
    durations = seen(Durations(), 0.0001, "p0", "p1")
    keep, publish = plan(fan_out(2, timeout_on="p0"), WF, tokens("p0", "p1"), [], durations)
    assert names(keep) == ["p1"]
    assert names(publish) == ["p0"]


def test_durations_are_a_weighted_mean_per_workflow_and_node() -> None:
    durations = Durations()
    assert durations.predicted(WF, "n") is None
    durations.record(WF, "n", 1.0)
    durations.record(WF, "n", 0.0)
    assert 0.0 < (durations.predicted(WF, "n") or 0) < 1.0
    assert durations.predicted("other", "n") is None
