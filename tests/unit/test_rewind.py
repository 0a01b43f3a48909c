"""What ``wfrunner rerun --from NODE`` discards (wfrunner/engine/rewind.py) and so which
tokens the rebuilt run holds pending: pure, events in, events out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wfrunner.compiler import compile_workflow
from wfrunner.compiler.ir import IR
from wfrunner.engine.events import event
from wfrunner.engine.rewind import check_from, downstream, effective, redrives
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError, NotFoundError
from wfrunner.recovery import _History

RUN = "r1"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workflows" / "valid"


def ir_of(nodes: list[str], edges: list[tuple[str, str]], joins: tuple[str, ...] = ()) -> IR:
    return compile_workflow(
        {
            "metadata": {"name": "w"},
            "nodes": [
                {"id": n, "type": "transform", "config": {"expression": "input"},
                 **({"wait_for_all": True} if n in joins else {})}
                for n in nodes
            ],
            "edges": [{"from": a, "to": b} for a, b in edges],
        }
    )  # fmt: skip


def emitted(token: Token, by: Token | None) -> dict[str, Any]:
    return event(
        "token_emitted",
        token.from_node,
        to=token.to_node,
        scope="",
        token=token.to_dict(),
        by=by.key if by else "start",
        **{"from": token.from_node},
    )


def completed(token: Token, ref: str) -> dict[str, Any]:
    return event("node_completed", token.to_node, scope="", output_ref=ref, token=token.to_dict())


def chain_run() -> tuple[IR, list[dict[str, Any]], dict[str, Token]]:
    """A -> B -> C: A and B completed, C failed."""
    ir = ir_of(["A", "B", "C"], [("A", "B"), ("B", "C")])
    a = Token.entry(RUN, "A")
    b = a.child("B", "ref-a")
    c = b.child("C", "ref-b")
    events = [
        event("run_started"),
        emitted(a, None),
        completed(a, "ref-a"),
        emitted(b, a),
        completed(b, "ref-b"),
        emitted(c, b),
        event("node_failed", "C", error="boom", token=c.to_dict()),
        event("run_failed", error="boom"),
    ]
    return ir, events, {"A": a, "B": b, "C": c}


def pending(ir: IR, events: list[dict[str, Any]]) -> set[str]:
    joins = {n.id: list(n.dependencies) for n in ir.nodes.values() if n.wait_for_all}
    return {t.to_node for t in _History(effective(ir, events), joins).pending().values()}


def redriven(start: str | None) -> dict[str, Any]:
    return event("run_redriven", attempt=2, by="x", reason=None, **{"from": start})


def test_a_plain_rerun_makes_the_failed_token_pending_and_keeps_every_output() -> None:
    ir, events, _ = chain_run()
    events.append(redriven(None))
    assert pending(ir, events) == {"C"}
    joins: dict[str, list[str]] = {}
    assert _History(effective(ir, events), joins).context == {"A": "ref-a", "B": "ref-b"}


def test_rerun_from_a_node_makes_its_token_pending_and_discards_its_downstream() -> None:
    ir, events, tokens = chain_run()
    events.append(redriven("B"))
    assert pending(ir, events) == {"B"}  # C's token is B's to emit again
    history = _History(effective(ir, events), {})
    assert history.context == {"A": "ref-a"}  # upstream keeps its output
    assert tokens["B"].key not in history.consumed
    assert tokens["A"].key in history.consumed


def test_a_later_plain_rerun_keeps_what_an_earlier_from_discarded_out() -> None:
    """Every rebuild (after a Redis loss too) reads the run_redriven events again."""
    ir, events, tokens = chain_run()
    events.append(redriven("A"))
    assert pending(ir, events) == {"A"}
    events += [completed(tokens["A"], "ref-a2"), emitted(tokens["B"], tokens["A"])]
    assert pending(ir, events) == {"B"}


def test_downstream_follows_branches_joins_and_loops() -> None:
    ir = ir_of(["A", "B", "C", "J", "D"], [("A", "B"), ("A", "C"), ("B", "J"), ("C", "J"),
                                           ("J", "D")], joins=("J",))  # fmt: skip
    assert downstream(ir, "B") == {"B", "J", "D"}
    assert downstream(ir, "A") == {"A", "B", "C", "J", "D"}
    loop = compile_workflow(json.loads((FIXTURES / "loop.json").read_text()))
    assert downstream(loop, "start") == set(loop.nodes)
    assert downstream(loop, "check") >= {"step", "check", "done", "gave_up"}


def test_check_from_refuses_what_it_cannot_rerun_right() -> None:
    ir, events, _ = chain_run()
    assert check_from(ir, events, "B") == {"B", "C"}
    with pytest.raises(
        NotFoundError, match="the workflow has no node 'Z' \\(its nodes: A, B, C\\)"
    ):
        check_from(ir, events, "Z")
    with pytest.raises(ConflictError, match="node 'C' never completed in this run"):
        check_from(ir, events, "C")
    loop = compile_workflow(json.loads((FIXTURES / "loop.json").read_text()))
    done = [event("node_completed", n, scope="") for n in loop.nodes]
    with pytest.raises(ConflictError, match="node 'step' is inside a loop"):
        check_from(loop, done, "step")
    assert check_from(loop, done, "start") == set(loop.nodes)  # the whole loop again
    # a node with two incoming edges is a join: it keeps the arrivals from outside
    done = [event("node_completed", n, scope="") for n in ("A", "B", "C", "J")]
    join = ir_of(["A", "B", "C", "J"], [("A", "B"), ("A", "C"), ("B", "J"), ("C", "J")],
                 joins=("J",))  # fmt: skip
    assert check_from(join, done, "B") == {"B", "J"}


def test_a_join_keeps_the_arrivals_from_outside_and_loses_its_fire_token() -> None:
    """A -> {B, C} -> J: C's dead arrival (recorded by A's commit) stays; B's live one and
    the token that fired J go: J fires again when B's new arrival completes it."""
    ir = ir_of(["A", "B", "C", "J"], [("A", "B"), ("A", "C"), ("B", "J"), ("C", "J")],
               joins=("J",))  # fmt: skip
    a = Token.entry(RUN, "A")
    b = a.child("B", "ref-a")
    b_to_j = b.child("J", "ref-b")
    fire = Token(RUN, "C", "J", None, 2)  # fired by C's dead arrival, completing J
    events = [
        emitted(a, None),
        completed(a, "ref-a"),
        emitted(b, a),
        completed(b, "ref-b"),
        event("join_arrived", "J", scope="", live=True, token=b_to_j.to_dict(), by=b.key,
              **{"from": "B"}),
        event("join_arrived", "J", scope="", live=False, **{"from": "C"}),
        emitted(fire, a),
        completed(fire, "ref-j"),
        event("run_failed", error="later"),
        redriven("B"),
    ]  # fmt: skip
    kept = effective(ir, events)
    history = _History(kept, {"J": ["B", "C"]})
    assert {t.to_node for t in history.pending().values()} == {"B"}
    assert history.joins == {"J||C": "-"}  # C's dead arrival; no finisher
    assert history.arrived["J|"] == 1
    # from J itself: its arrivals stay, and so does the fire token (nothing else fires it)
    events[-1] = redriven("J")
    history = _History(effective(ir, events), {"J": ["B", "C"]})
    assert {t.to_node for t in history.pending().values()} == {"J"}
    assert history.joins["J|#fin"] == "C"


def test_redrives_lists_each_rerun() -> None:
    events = [event("run_started"), {**redriven("B"), "ended": "FAILED", "error": "boom"}]
    [only] = redrives(events)
    assert (only["attempt"], only["from"], only["ended"], only["error"]) == (
        2,
        "B",
        "FAILED",
        "boom",
    )
    assert redrives([event("run_started")]) == []


def test_check_from_refuses_to_rerun_a_map_node() -> None:
    ir = compile_workflow(
        {
            "metadata": {"name": "m"},
            "nodes": [
                {"id": "A", "type": "transform", "config": {"expression": "[1, 2]"}},
                {"id": "M", "type": "transform",
                 "config": {"expression": "input * 2", "map_over": "input"}},
            ],
            "edges": [{"from": "A", "to": "M"}],
        }
    )  # fmt: skip
    done = [event("node_completed", n, scope="") for n in ("A", "M")]
    with pytest.raises(ConflictError, match="node 'M' is a map node and would run again"):
        check_from(ir, done, "A")
