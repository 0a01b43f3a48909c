"""``wfrunner doctor``'s reasons: each stuck (or waiting) situation, from a snapshot."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from wfrunner.doctor import describe
from wfrunner.doctor.reasons import (
    COMPLETION_DUE,
    COUNTER_MISMATCH,
    DEAD_WORKER,
    ENDED,
    HOT_STATE_LOST,
    IDLE,
    LOST_MESSAGE,
    NO_WORKER,
    PENDING,
    POISON,
    QUEUED,
    REBUILD,
    REQUEUE,
    RUNNING,
    WAITING_APPROVAL,
    WAITING_JOIN,
    WAITING_RETRY,
    Limits,
    Snapshot,
    Worker,
    diagnose,
)
from wfrunner.engine.leases import Lease
from wfrunner.engine.tokens import Token

NOW = 1_800_000_000.0
LIMITS = Limits(
    stall_after=30.0,
    run_timeout=300.0,
    timeout_check_interval=30.0,
    reconcile_interval=10.0,
    republish_hold=3600.0,
)
ENTRY = Token("r1", None, "A")
B = Token("r1", "A", "B", "ref-a", hop=1)
C = Token("r1", "A", "C", "ref-a", hop=1)
HOLDER = "0123abcd~host-1:4242@task-9"


def snap(**changes: Any) -> Snapshot:
    """A RUNNING run with hot state, last active 5 s ago, the reconciler running."""
    base = Snapshot(
        run_id="r1",
        workflow_id="wf1",
        workflow="orders",
        status="RUNNING",
        created_at=NOW - 100,
        last_activity=NOW - 5,
        now=NOW,
        clock=NOW,
        limits=LIMITS,
        hot=True,
        state="running",
        activity=NOW - 5,
        counter=0,
        messages={},
        passes={"reconcile": NOW - 2, "detect_timeouts": NOW - 2},
        predecessors={"A": (), "B": ("A",), "C": ("A",), "J": ("B", "C"), "X": ("C",)},
        join_inputs={"J": ("B", "C")},
    )
    return replace(base, **changes)


def outbox(*tokens: Token, **changes: Any) -> Snapshot:
    pending = {t.key: t for t in tokens}
    return snap(pending=pending, counter=len(pending), **changes)


def kinds(s: Snapshot) -> list[str]:
    return [f.kind for f in diagnose(s).findings]


def only(s: Snapshot) -> Any:
    found = diagnose(s).findings
    assert len(found) == 1, found
    return found[0]


def test_a_token_no_worker_took_and_no_message_carries_is_a_lost_message() -> None:
    s = outbox(B, activity=NOW - 120, last_activity=NOW - 120)
    found = only(s)
    assert found.kind == LOST_MESSAGE and found.stuck and found.action == REQUEUE
    assert "no worker took it for 2.0 min" in found.summary
    assert found.node == "B"
    diagnosis = diagnose(s)
    assert diagnosis.stuck and diagnosis.action == REQUEUE


def test_a_token_just_emitted_is_pending_not_lost() -> None:
    found = only(outbox(B, activity=NOW - 2, last_activity=NOW - 2))
    assert found.kind == PENDING and not found.stuck


def test_a_token_whose_message_waits_in_the_broker_is_queued() -> None:
    s = outbox(B, activity=NOW - 120, last_activity=NOW - 120, messages={B.key: "queued"})
    found = only(s)
    assert found.kind == QUEUED and not found.stuck


def test_a_queued_message_no_live_worker_consumes_calls_for_a_worker() -> None:
    silent = Worker("w1@host-1", "online", NOW - 600, ("wfrunner.tasks",))
    s = outbox(
        B,
        activity=NOW - 120,
        last_activity=NOW - 120,
        messages={B.key: "queued"},
        workers=(silent,),
    )
    found = only(s)
    assert found.kind == NO_WORKER and found.stuck
    alive = replace(silent, last_heartbeat=NOW - 10)
    assert only(replace(s, workers=(alive,))).kind == QUEUED


def test_a_republished_token_whose_message_is_gone_again_is_lost_with_when_it_was_tried() -> None:
    republished_at = NOW - 50
    mark = Lease(republished_at + LIMITS.republish_hold, "republished")
    s = outbox(B, activity=NOW - 120, last_activity=NOW - 120, running={B.key: mark})
    found = only(s)
    assert found.kind == LOST_MESSAGE and found.stuck
    assert found.details["republished_at"] == republished_at
    assert describe.clock(republished_at) in found.summary


def test_an_expired_lease_is_a_dead_worker_naming_its_task_host_and_registered_worker() -> None:
    lease = Lease(NOW - 40, HOLDER)
    worker = Worker("fault1@host-1", "online", NOW - 200)
    s = outbox(B, running={B.key: lease}, workers=(worker,))
    found = only(s)
    assert found.kind == DEAD_WORKER and found.stuck and found.action == REQUEUE
    assert "task task-9 on host-1 (pid 4242)" in found.summary
    assert describe.clock(NOW - 40) in found.summary
    assert "worker fault1@host-1 is registered there (last heartbeat, silent since" in found.summary
    assert found.details["workers"] == ["fault1@host-1"]


def test_a_live_lease_is_a_running_node_and_nothing_is_stuck() -> None:
    s = outbox(B, running={B.key: Lease(NOW + 10, HOLDER)}, activity=NOW - 400)
    found = only(s)
    assert found.kind == RUNNING and not found.stuck
    assert "lease live 10 s more" in found.summary
    assert not diagnose(s).stuck
    assert diagnose(s).fails_at is None  # a running node keeps the run from timing out


def test_a_retry_not_yet_due_is_waiting_with_its_attempt_and_due_time() -> None:
    s = outbox(B, running={B.key: Lease(NOW + 20, "retry")}, attempts={B.key: 2})
    found = only(s)
    assert found.kind == WAITING_RETRY and not found.stuck
    assert found.details == {
        "token": B.key,
        "from": "A",
        "scope": "",
        "attempt": 2,
        "due_at": NOW + 20,
    }


def test_an_overdue_retry_nobody_took_is_a_lost_message() -> None:
    s = outbox(
        B,
        running={B.key: Lease(NOW - 60, "retry")},
        activity=NOW - 100,
        last_activity=NOW - 100,
    )
    found = only(s)
    assert found.kind == LOST_MESSAGE and "its retry was due at" in found.summary


def test_an_undecided_approval_waits_for_a_person_with_since_and_deadline() -> None:
    request = {"node": "B", "requested_at": NOW - 30, "deadline": NOW + 600, "decision": None}
    s = outbox(
        B,
        running={B.key: Lease(NOW + 600, "approval")},
        approvals={B.key: request},
        status="WAITING",
        activity=NOW - 30,
        last_activity=NOW - 30,
    )
    found = only(s)
    assert found.kind == WAITING_APPROVAL and not found.stuck
    assert describe.clock(NOW - 30) in found.summary
    assert describe.clock(NOW + 600) in found.summary
    assert "wfrunner approve r1 B" in found.summary


def test_a_join_names_its_arrived_and_missing_inputs_and_what_the_missing_ones_do() -> None:
    s = outbox(
        C,
        joins={"J||B": "ref-b", "J|#n": "1"},
        running={C.key: Lease(NOW + 5, HOLDER)},
    )
    join = next(f for f in diagnose(s).findings if f.kind == WAITING_JOIN)
    assert not join.stuck
    assert join.details["arrived"] == ["B"]
    assert join.details["missing"] == {
        "C": {"state": RUNNING, "why": join.details["missing"]["C"]["why"]}
    }
    assert "join J has B; waits for C: running" in join.summary


def test_a_join_input_with_nothing_in_flight_upstream_is_stuck() -> None:
    s = snap(joins={"J||B": "ref-b", "J|#n": "1"}, counter=0)
    join = next(f for f in diagnose(s).findings if f.kind == WAITING_JOIN)
    assert join.stuck
    assert "C: never started" in join.summary


def test_a_join_input_not_started_names_the_upstream_node_in_flight() -> None:
    a = ENTRY
    s = outbox(a, joins={"J||B": "-", "J|#n": "1"}, running={a.key: Lease(NOW + 5, HOLDER)})
    join = next(f for f in diagnose(s).findings if f.kind == WAITING_JOIN)
    assert not join.stuck
    assert "B (dead path)" in join.summary
    assert "C: not started; waits for A (running)" in join.summary


def test_a_complete_join_is_no_finding() -> None:
    s = snap(joins={"J||B": "r", "J||C": "r", "J|#n": "2", "J|#fin": "C"})
    assert WAITING_JOIN not in kinds(s)


def test_postgresql_running_and_redis_empty_is_hot_state_lost() -> None:
    found = only(snap(hot=False, state=None, counter=None, activity=None))
    assert found.kind == HOT_STATE_LOST and found.stuck and found.action == REBUILD


def test_no_activity_beyond_the_run_timeout_is_idle_and_says_when_it_fails() -> None:
    s = outbox(B, activity=NOW - 400, last_activity=NOW - 400, messages={B.key: "queued"})
    diagnosis = diagnose(s)
    idle = next(f for f in diagnosis.findings if f.kind == IDLE)
    assert idle.stuck and "no activity for 6.7 min" in idle.summary
    assert diagnosis.fails_at == NOW - 400 + LIMITS.run_timeout


def test_a_waiting_run_never_times_out() -> None:
    s = outbox(B, activity=NOW - 400, last_activity=NOW - 400, status="WAITING")
    assert IDLE not in kinds(s) and diagnose(s).fails_at is None


def test_a_counter_that_disagrees_with_the_outbox_is_a_mismatch_the_replay_explains() -> None:
    s = outbox(B, running={B.key: Lease(NOW + 5, HOLDER)})
    s = replace(s, counter=3, replayed=(1, frozenset({B.key})))
    found = next(f for f in diagnose(s).findings if f.kind == COUNTER_MISMATCH)
    assert found.stuck and found.action == REBUILD
    assert "a counter of 3 but 1 tokens in the outbox" in found.summary
    assert "could never complete" in found.summary
    assert "a replay of its events gives 1 and 1" in found.summary


def test_no_token_in_flight_in_a_running_run_is_a_completion_due() -> None:
    found = only(snap(activity=NOW - 100, last_activity=NOW - 100))
    assert found.kind == COMPLETION_DUE and found.stuck


def test_an_ended_run_is_not_stuck() -> None:
    found = only(snap(status="COMPLETED", ended_at=NOW - 10))
    assert found.kind == ENDED and not found.stuck
    assert "not stuck: it ended COMPLETED" in found.summary


def test_a_stuck_run_notes_a_reconciler_that_does_not_run() -> None:
    lost = outbox(B, activity=NOW - 120, last_activity=NOW - 120)
    assert diagnose(lost).notes == ()
    never = replace(lost, passes={})
    assert any("never ran" in n and "celery beat" in n for n in diagnose(never).notes)
    late = replace(lost, passes={"reconcile": NOW - 900, "detect_timeouts": NOW - 2})
    assert any("wfrunner.reconcile last ran" in n for n in diagnose(late).notes)


def test_stuck_findings_come_first() -> None:
    s = outbox(
        B, C, running={B.key: Lease(NOW + 5, HOLDER)}, activity=NOW - 120, last_activity=NOW - 1
    )
    s = replace(s, activity=NOW - 120, last_activity=NOW - 120)
    assert kinds(s) == [LOST_MESSAGE, RUNNING]


def test_the_republished_event_says_why_each_token_stalled() -> None:
    stalled = [(B, None), (C, Lease(NOW - 40, HOLDER))]
    evt = describe.republished_event(stalled, NOW, 300.0, "reconciler")
    assert evt["type"] == "reconciler_repaired" and evt["repair"] == "republished"
    assert [t["cause"] for t in evt["tokens"]] == ["lost_message", "dead_worker"]
    assert evt["tokens"][1]["holder"] == HOLDER
    assert evt["summary"].startswith(f"republished 2 tokens at {describe.clock(NOW)}: B (no ")
    assert "no worker took it for 5.0 min" in evt["summary"]


def test_poison_messages_naming_the_run_are_told_with_the_lost_token() -> None:
    s = outbox(B, activity=NOW - 120, last_activity=NOW - 120)
    s = replace(s, poison=("dead letter 7 from wfrunner.tasks: body is not valid base64",))
    assert kinds(s) == [LOST_MESSAGE, POISON]
    found = diagnose(s).findings[1]
    assert not found.stuck
    assert found.summary == (
        "1 message of this run was set aside as poison: dead letter 7 from wfrunner.tasks: "
        "body is not valid base64"
    )


def test_a_subworkflow_node_waits_for_its_child_until_the_child_ends_untold() -> None:
    s = outbox(
        B,
        running={B.key: Lease(NOW + 9e9, "child")},
        children={B.key: "child-1"},
        child_status={"child-1": "RUNNING"},
        activity=NOW - 400,
        last_activity=NOW - 400,
    )
    found = only(s)
    assert found.kind == "waiting_child" and not found.stuck
    assert "waits for its child run child-1 (RUNNING" in found.summary
    told = only(replace(s, child_status={"child-1": "COMPLETED"}))
    assert told.kind == "child_end_untold" and told.stuck


def test_a_paused_run_is_not_stuck() -> None:
    """wfrunner pause: it waits for its resume, however long it is idle."""
    for paused in (snap(status="PAUSED", state="paused"), snap(state="paused")):
        [finding] = diagnose(replace(paused, activity=NOW - 10_000)).findings
        assert (finding.kind, finding.stuck, finding.action) == ("paused", False, "wait")
        assert "wfrunner resume r1" in finding.summary
