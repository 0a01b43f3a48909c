"""The replay fold over hand-written event lists, shaped as the engine writes them
(wfrunner/engine/executor.py, lifecycle.py): the counter, outbox, applied op keys, joins,
node states, executions and the run's end each events imply."""

from __future__ import annotations

from typing import Any

from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.replay import replay
from wfrunner.replay.fold import ReplayedState
from wfrunner.states import NodeStatus, RunStatus

RUN = "r1"


class Log:
    """Events as the engine appends them, for one run."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = [
            {"type": "run_started", "node": None, "workflow_id": "w"}
        ]

    def emit(self, token: Token, by: str = "x") -> Token:
        self.events.append(
            {
                "type": "token_emitted",
                "node": token.from_node,
                "from": token.from_node,
                "to": token.to_node,
                "scope": token.scope,
                "token": token.to_dict(),
                "by": by,
            }
        )
        return token

    def entry(self, node: str) -> Token:
        return self.emit(Token.entry(RUN, node), by="start")

    def start(self, node: str, scope: str = "", attempt: int = 1) -> None:
        self.events.append(
            {"type": "node_started", "node": node, "scope": scope, "attempt": attempt}
        )

    def complete(self, token: Token, ref: str) -> None:
        self.events.append(
            {
                "type": "node_completed",
                "node": token.to_node,
                "scope": token.scope,
                "output_ref": ref,
                "token": token.to_dict(),
            }
        )

    def run(self, token: Token, ref: str) -> None:
        """A node's delivery: started, completed."""
        self.start(token.to_node, token.scope)
        self.complete(token, ref)

    def consumed_arrival(self, token: Token) -> None:
        self.events.append(
            {
                "type": "join_arrived",
                "node": token.to_node,
                "scope": token.scope,
                "live": True,
                "from": token.from_node,
                "token": token.to_dict(),
            }
        )

    def dead_arrival(self, join: str, from_node: str) -> None:
        self.events.append(
            {"type": "join_arrived", "node": join, "scope": "", "live": False, "from": from_node}
        )

    def add(self, kind: str, node: str | None = None, **data: Any) -> None:
        self.events.append({"type": kind, "node": node, **data})


DIAMOND = ["A", "B", "C", "D"]
D_JOIN = {"D": ["B", "C"]}


def diamond(until_c: bool = False) -> Log:
    """A -> B, C -> D (a join), as one worker commits it."""
    log = Log()
    a = log.entry("A")
    log.run(a, "rA")
    b, c = log.emit(a.child("B", "rA")), log.emit(a.child("C", "rA"))
    log.run(b, "rB")
    bd = log.emit(b.child("D", "rB"))
    log.consumed_arrival(bd)  # not the join's last arrival: consumed in B's commit
    log.run(c, "rC")
    cd = log.emit(c.child("D", "rC"))  # the finisher: stays in the outbox
    if not until_c:
        log.start("D")
        log.complete(cd, "rD")
        log.add("run_completed")
    return log


def fold(log: Log, nodes: list[str], joins: dict[str, list[str]] | None = None) -> ReplayedState:
    return replay(RUN, log.events, nodes, joins or {})


def advance(*tokens: Token) -> set[str]:
    return {keys.op_key(RUN, "init", None, None, 1)} | {t.op_key("advance") for t in tokens}


def test_a_completed_diamond_leaves_nothing_in_flight() -> None:
    state = fold(diamond(), DIAMOND, D_JOIN)
    assert state.status is RunStatus.COMPLETED
    assert (state.counter, state.pending, state.entry_tokens) == (0, {}, 1)
    assert (state.tokens_emitted, state.tokens_consumed) == (5, 5)
    assert len(state.applied) == 6
    assert state.joins == {"D||B": "rB", "D||C": "rC", "D|#n": "2", "D|#fin": "C"}
    assert state.context == {"A": "rA", "B": "rB", "C": "rC", "D": "rD"}
    assert set(state.node_statuses().values()) == {NodeStatus.COMPLETED}
    assert [p["to"] for p in state.path] == ["A", "B", "C", "D", "D"]
    assert state.statistics() == {
        "nodes_executed": 4,
        "nodes_skipped": 0,
        "tokens_emitted": 5,
        "tokens_consumed": 5,
    }


def test_a_diamond_mid_flight_holds_the_joins_finisher_in_its_outbox() -> None:
    state = fold(diamond(until_c=True), DIAMOND, D_JOIN)
    a = Token.entry(RUN, "A")
    b, c = a.child("B", "rA"), a.child("C", "rA")
    finisher = c.child("D", "rC")
    assert state.status is RunStatus.RUNNING
    assert state.counter == 1
    assert set(state.pending) == {finisher.key}
    assert state.applied == advance(a, b, c, b.child("D", "rB"))
    assert state.joins["D|#fin"] == "C"
    assert state.node_statuses()["D"] is NodeStatus.PENDING


def test_a_branch_skips_its_dead_path_and_records_the_dead_arrival() -> None:
    """A -> B (taken) | C (not taken) -> D: C skipped, its arrival at D dead, B fires D."""
    log = Log()
    a = log.entry("A")
    log.start("A")
    log.complete(a, "rA")
    log.add("node_skipped", "C", scope="")
    log.dead_arrival("D", "C")
    b = log.emit(a.child("B", "rA"))
    log.run(b, "rB")
    bd = log.emit(b.child("D", "rB"))
    log.run(bd, "rD")
    log.add("run_completed")
    state = fold(log, DIAMOND, D_JOIN)
    assert state.node_statuses()["C"] is NodeStatus.SKIPPED
    assert state.joins == {"D||C": "-", "D||B": "rB", "D|#n": "2", "D|#fin": "B"}
    assert state.counter == 0
    assert [(e.node_id, e.status) for e in state.executions] == [
        ("A", NodeStatus.COMPLETED),
        ("C", NodeStatus.SKIPPED),
        ("B", NodeStatus.COMPLETED),
        ("D", NodeStatus.COMPLETED),
    ]
    assert state.statistics()["nodes_skipped"] == 1


def test_a_loop_with_two_passes_counts_each_pass_as_a_new_token() -> None:
    """A -> L, L loops back to A once (scope L=2), then breaks to E."""
    log = Log()
    a1 = log.entry("A")
    log.run(a1, "rA1")
    l1 = log.emit(a1.child("L", "rA1"))
    log.run(l1, "rL1")
    log.add("loop_decided", "L", outcome="back", **{"pass": 1})
    a2 = log.emit(l1.child("A", "rL1", iteration=2, scope="L=2", passes=1))
    log.run(a2, "rA2")
    l2 = log.emit(a2.child("L", "rA2"))
    log.run(l2, "rL2")
    log.add("loop_decided", "L", outcome="break", **{"pass": 2})
    e = log.emit(l2.child("E", "rL2", scope=""))
    log.run(e, "rE")
    log.add("run_completed")
    state = fold(log, ["A", "L", "E"])
    assert state.counter == 0 and not state.pending
    assert state.loops == {"L": 2}
    assert (state.nodes["A"].completed, state.nodes["A"].started) == (2, 2)
    assert state.applied == advance(a1, l1, a2, l2, e)
    assert state.context["A"] == "rA2"
    a_rows = [(x.iteration, x.attempt, x.output_ref) for x in state.executions if x.node_id == "A"]
    assert a_rows == [(1, 1, "rA1"), (2, 1, "rA2")]


def test_a_retried_node_counts_both_attempts_and_completes_once() -> None:
    log = Log()
    a = log.entry("A")
    log.start("A", attempt=1)
    log.add("node_retrying", "A", scope="", attempt=1, error="boom", delay=0.1)
    log.start("A", attempt=2)
    log.complete(a, "rA")
    log.add("run_completed")
    state = fold(log, ["A"])
    node = state.nodes["A"]
    assert (node.started, node.completed, node.errors) == (2, 1, 1)
    assert state.node_statuses()["A"] is NodeStatus.COMPLETED
    assert [(x.iteration, x.attempt) for x in state.executions] == [(1, 2)]
    assert state.counter == 0


def test_a_failure_ends_the_run_with_its_token_in_flight() -> None:
    """A -> B -> C, B fails: its token is never consumed; C, never reached, is SKIPPED."""
    log = Log()
    a = log.entry("A")
    log.run(a, "rA")
    b = log.emit(a.child("B", "rA"))
    log.start("B")
    error = "node 'B' failed: ValueError: boom"
    log.add("node_failed", "B", scope="", error=error, attempt=1, token=b.to_dict())
    log.add("run_failed", error=error)
    state = fold(log, ["A", "B", "C"])
    assert (state.status, state.error) == (RunStatus.FAILED, error)
    assert state.counter == 1 and set(state.pending) == {b.key}
    assert state.node_statuses() == {
        "A": NodeStatus.COMPLETED,
        "B": NodeStatus.FAILED,
        "C": NodeStatus.SKIPPED,
    }
    assert state.nodes["B"].error == error
    assert state.executions[-1].status is NodeStatus.FAILED
    # the run's end counts the token in flight as consumed (the stored statistic)
    assert state.statistics()["tokens_consumed"] == state.tokens_emitted == 2


def test_a_cancelled_run_keeps_its_error() -> None:
    log = Log()
    log.entry("A")
    log.add("run_cancelled", error="cancelled by test")
    state = fold(log, ["A"])
    assert (state.status, state.error, state.counter) == (
        RunStatus.CANCELLED,
        "cancelled by test",
        1,
    )


def test_a_rebuild_forgets_join_arrivals_no_event_names() -> None:
    """recovery.rebuild records only the arrivals events name: a finisher still in the
    outbox is recorded again by its delivery (join_arrive.lua)."""
    log = diamond(until_c=True)
    log.add("run_recovered", pending=1)
    state = fold(log, DIAMOND, D_JOIN)
    assert state.joins == {"D||B": "rB", "D|#n": "1"}
    assert state.counter == 1


def test_events_that_carry_too_little_are_noted_not_guessed() -> None:
    log = Log()
    log.add("token_emitted", None, to="A", scope="")
    log.add("node_exploded", "A")
    state = fold(log, ["A"])
    assert state.counter == 1 and state.pending == {}
    assert len(state.notes) == 2
    assert "carries no token" in state.notes[0]
    assert "unknown type 'node_exploded'" in state.notes[1]
