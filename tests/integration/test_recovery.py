"""Faults at the level of single deliveries, driven by tests/harness.py on the real Redis
and PostgreSQL: duplicates, crashes before the ack, lost publishes, a wiped Redis,
retries and dead letters."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.harness import Harness
from wfrunner import client, handlers, recovery
from wfrunner.engine import keys
from wfrunner.engine.executor import Outcome
from wfrunner.errors import CounterError
from wfrunner.runtime import Runtime

FLAKY: dict[str, int] = {}


@handlers.handler("rt.flaky")
def flaky(value: Any, config: dict[str, Any]) -> Any:
    """Raises until it has been called ``fail_times`` times for this tag."""
    tag = config["tag"]
    FLAKY[tag] = FLAKY.get(tag, 0) + 1
    if FLAKY[tag] <= int(config["fail_times"]):
        raise RuntimeError(f"transient failure {FLAKY[tag]}")
    return {"calls": FLAKY[tag]}


def diamond() -> dict[str, Any]:
    def node(node_id: str) -> dict[str, Any]:
        return {"id": node_id, "type": "transform", "config": {"expression": f"['{node_id}']"}}

    return {
        "nodes": [
            node("A"),
            node("B"),
            node("C"),
            {"id": "D", "type": "aggregate", "config": {"strategy": "concat"}},
        ],
        "edges": [
            {"from": "A", "to": "B"},
            {"from": "A", "to": "C"},
            {"from": "B", "to": "D"},
            {"from": "C", "to": "D"},
        ],
    }


def chain(n: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "type": "transform", "config": {"expression": f"{i}"}} for i in range(n)
    ]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"nodes": nodes, "edges": edges}


def test_every_message_delivered_twice_dispatches_once(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(diamond(), {})
    while h.queue:
        token = h.queue.popleft()
        first = h.process(token)
        second = h.process(token)  # a duplicate delivered after the first finished
        h.act(token, first)
        h.act(token, second)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "COMPLETED", doc["error"]
    # A, B, C, and D once: the first arrival at D is recorded by its emitter's commit
    assert len(h.dispatched) == len(set(h.dispatched)) == 4
    assert doc["nodes"]["D"]["output"] == ["B", "C"]


#: the handler "rt.gated" blocks its first caller until the test opens this gate
_gate = threading.Event()
_began = threading.Event()
_gated_calls: list[int] = []


@handlers.handler("rt.gated")
def gated(value: Any, config: dict[str, Any]) -> Any:
    _gated_calls.append(1)
    if len(_gated_calls) == 1:
        _began.set()
        assert _gate.wait(30), "the test never opened the gate"
    return {"call": len(_gated_calls)}


def test_interleaved_duplicates_commit_once_and_dispatch_once(rt: Runtime) -> None:
    """Two deliveries of one token both begin before either commits (the first one's
    lease expired while its handler was stuck: its worker looked dead), then both commit:
    exactly one commit moves the counter, is ``mine`` and dispatches."""
    _gate.clear()
    _began.clear()
    _gated_calls.clear()
    h = Harness(rt)
    definition = chain(3)
    definition["nodes"][1] = {
        "id": "n1",
        "type": "function",
        "config": {"function_name": "rt.gated"},
    }
    h.start(definition, {})
    h.deliver()  # n0
    token = h.queue.popleft()  # n0 -> n1
    counter_before = rt.state.counter(h.run_id)
    outcomes: dict[str, Outcome] = {}
    first = threading.Thread(target=lambda: outcomes.__setitem__("first", h.process(token)))
    first.start()
    assert _began.wait(30)
    # the first delivery is inside its handler; its lease runs out (no heartbeat reached
    # Redis), so a second delivery of the same message may begin
    rt.redis.hset(keys.running_key(h.run_id), token.key, "1.000|lost-heartbeat")
    for lease in rt.state.leases(h.run_id).values():
        assert lease.until < rt.state.clock()
    outcomes["second"] = h.process(token)  # begins, runs, commits
    _gate.set()
    first.join(30)
    assert not first.is_alive()
    assert _gated_calls == [1, 1]  # both deliveries ran the handler: both passed begin
    mine = [name for name, o in outcomes.items() if o.dispatch]
    assert mine == ["second"], outcomes
    assert outcomes["first"].ignored == "another delivery of this token committed first"
    assert [t.to_node for t in outcomes["second"].dispatch] == ["n2"]
    # n0 -> n1 consumed, n1 -> n2 emitted: the counter moved once (by 0), not twice
    assert rt.state.counter(h.run_id) == counter_before
    assert rt.state.left_behind(h.run_id, outcomes["second"].dispatch, nonce="-")
    for name in ("second", "first"):
        h.act(token, outcomes[name])
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["n1"]["output"] == {"call": 2}
    assert len(h.dispatched) == len(set(h.dispatched)) == 3


def test_stale_delivery_after_the_run_ended_changes_nothing(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    first = h.queue[0]
    h.drain()
    late = h.process(first)
    assert late.ignored in {"run is gone", "token already committed (duplicate or late delivery)"}
    assert late.dispatch == []
    assert client.get_run(h.run_id, rt)["status"] == "COMPLETED"


def test_lost_publish_is_repaired_by_the_reconciler(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(3), {})
    token = h.queue.popleft()
    outcome = h.process(token)
    h.act(token, outcome, publish=False)  # the worker died between commit and publish
    assert not h.queue
    rt.redis.hset(keys.meta_key(h.run_id), "activity", 0)  # ... long enough ago
    h.reconcile()
    assert [t.to_node for t in h.queue] == ["n1"]
    assert h.drain()["status"] == "COMPLETED"


def test_crash_before_ack_redelivers_and_counts_attempts(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    token = h.queue[0]
    rt.state.begin(token, 0.0, None, lease=0)  # a delivery that died in the handler
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["n0"]["attempts"] == 1  # the dead one wrote no node_started event


def test_token_whose_worker_always_dies_fails_after_the_cap(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    token = h.queue.popleft()
    for _ in range(rt.settings.max_deliveries):
        rt.state.begin(token, 0.0, None, lease=0)
    outcome = h.process(token)
    h.act(token, outcome)
    doc = client.get_run(h.run_id, rt)
    assert doc["status"] == "FAILED"
    assert "delivered 4 times and its worker died each time" in doc["error"]
    assert [d.node_id for d in rt.store.list_dead_letters()] == ["n0"]


def test_ambiguous_commit_retried_by_the_client_applies_once(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(2), {})
    token = h.queue.popleft()
    rt.state.begin(token, 0.0, None)
    child = token.child("n1", "ref")
    first = rt.state.commit(token, [child], 1.0, [], nonce="n-1", epoch="1", output=("ref", "0"))
    again = rt.state.commit(token, [child], 1.0, [], nonce="n-1", epoch="1", output=("ref", "0"))
    other = rt.state.commit(token, [child], 1.0, [], nonce="n-2", epoch="1", output=("ref", "0"))
    assert first.changed and first.mine
    assert not again.changed and again.mine  # the retry still dispatches
    assert not other.changed and not other.mine  # another delivery does not
    assert rt.state.counter(h.run_id) == 1


def test_a_commit_that_would_take_the_counter_below_zero_is_refused_whole(rt: Runtime) -> None:
    """The counter is the run's only completion signal: a delta it cannot hold (a bug in
    the caller's arithmetic) must fail loudly and leave every part of the commit undone."""
    h = Harness(rt)
    h.start(chain(2), {})
    token = h.queue.popleft()
    rt.state.begin(token, 0.0, None)
    with pytest.raises(CounterError, match="negative"):
        rt.state.commit(token, [], 1.0, [], nonce="n-1", epoch="1", output=("ref", "0"), delta=-2)
    assert rt.state.counter(h.run_id) == 1
    assert token.key in rt.state.pending(h.run_id)  # still owed: its redelivery can commit
    assert not rt.redis.sismember(keys.applied_key(h.run_id), token.op_key("advance"))
    assert rt.state.payloads(h.run_id, ["ref"]) == {}
    fixed = rt.state.commit(token, [], 1.0, [], nonce="n-1", epoch="1", output=("ref", "0"))
    assert fixed.changed and fixed.hit_zero


@pytest.mark.parametrize("ended", ["failed", "cancelled", "completed"])
def test_a_commit_into_an_ended_run_writes_nothing(rt: Runtime, ended: str) -> None:
    """Between a run's end and the drop of its keys, a late delivery still finds them: it
    must not consume its token, store its output or emit successors into the ended run."""
    h = Harness(rt)
    h.start(chain(2), {})
    token = h.queue.popleft()
    rt.state.begin(token, 0.0, None)
    assert rt.state.end(h.run_id, ended, "stopped by the test", [])
    late = rt.state.commit(
        token, [token.child("n1", "ref")], 1.0, [], nonce="n-1", epoch="1", output=("ref", "0")
    )
    assert late.state == ended and not late.changed and late.emitted == []
    assert rt.state.counter(h.run_id) == 1
    assert token.key in rt.state.pending(h.run_id)
    assert not rt.redis.sismember(keys.applied_key(h.run_id), token.op_key("advance"))
    assert rt.state.payloads(h.run_id, ["ref"]) == {}


def test_redis_wiped_mid_run_is_rebuilt_and_completes(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(diamond(), {})
    h.deliver()  # A
    h.deliver()  # B: its commit records D's first arrival, nothing is sent to D
    assert [t.to_node for t in h.queue] == ["C"]
    recovery.flush(rt, h.run_id)
    rt.redis.delete(*keys.run_keys(h.run_id))
    h.queue.clear()  # the broker lost its messages too
    h.reconcile()
    assert [t.to_node for t in h.queue] == ["C"]  # B's arrival at D was rebuilt, not resent
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["D"]["output"] == ["B", "C"]
    assert doc["nodes"]["A"]["attempts"] == 1


def test_rebuild_without_any_flush_restarts_from_the_entry_tokens(rt: Runtime) -> None:
    h = Harness(rt)
    h.start(chain(3), {})
    rt.redis.delete(*keys.run_keys(h.run_id))
    h.queue.clear()
    h.reconcile()
    assert [t.to_node for t in h.queue] == ["n0"]
    assert h.drain()["status"] == "COMPLETED"


def test_retry_policy_retries_then_succeeds(rt: Runtime) -> None:
    h = Harness(rt)
    wf = {
        "nodes": [
            {
                "id": "F",
                "type": "function",
                "retry": {"max_attempts": 3, "backoff_ms": 10},
                "config": {"function_name": "rt.flaky", "tag": "twice", "fail_times": 2},
            }
        ],
        "edges": [],
    }
    h.start(wf, {})
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["F"]["attempts"] == 3
    assert doc["nodes"]["F"]["output"] == {"calls": 3}


def test_exhausted_retries_dead_letter_and_dlq_retry_resumes(rt: Runtime) -> None:
    h = Harness(rt)
    wf = {
        "nodes": [
            {"id": "S", "type": "transform", "config": {"expression": "1"}},
            {
                "id": "F",
                "type": "function",
                "retry": {"max_attempts": 2, "backoff_ms": 1},
                "config": {"function_name": "rt.flaky", "tag": "thrice", "fail_times": 3},
            },
            {"id": "E", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "S", "to": "F"}, {"from": "F", "to": "E"}],
    }
    h.start(wf, {})
    doc = h.drain()
    assert doc["status"] == "FAILED"
    assert doc["error"] == "node 'F' failed: RuntimeError: transient failure 2"
    (letter,) = rt.store.list_dead_letters()
    assert (letter.node_id, letter.attempts) == ("F", 2)
    _, tokens = recovery.retry_dead_letter(rt, letter.id)
    assert [t.to_node for t in tokens] == ["F"]
    h.queue.extend(tokens)
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["error"] is None
    assert doc["nodes"]["F"]["status"] == "COMPLETED"
    assert doc["nodes"]["E"]["output"] == {"calls": 4}
    assert rt.store.list_dead_letters() == []
    with pytest.raises(Exception, match="only dead letters of FAILED runs"):
        recovery.retry_dead_letter(rt, letter.id)


def test_node_timeout_longer_than_visibility_timeout_is_accepted(rt: Runtime) -> None:
    """The token's lease, not the visibility timeout, keeps a long node from running
    twice at once (engine/leases.py): a timeout_ms beyond it is fine."""
    wf = {
        "nodes": [
            {
                "id": "slow",
                "type": "transform",
                "timeout_ms": 3_600_000,
                "config": {"expression": "1"},
            }
        ],
        "edges": [],
    }
    workflow_id = client.register_workflow(wf, rt)
    assert rt.ir(workflow_id).nodes["slow"].timeout_ms == 3_600_000


def test_redis_password_is_not_printed(tmp_path: Any) -> None:
    from wfrunner.errors import ConfigurationError
    from wfrunner.servers import resolve_redis_url

    with pytest.raises(ConfigurationError) as info:
        resolve_redis_url("redis://user:s3cret@127.0.0.1:1/0", tmp_path)
    assert "s3cret" not in str(info.value)
    assert "user:***@127.0.0.1:1" in str(info.value)


def test_a_delivery_begun_before_a_rebuild_cannot_commit_into_it(rt: Runtime) -> None:
    """Redis lost the run while the token firing a join was being processed: the join
    bookkeeping of the arrival that completed it is gone (only D's commit would have
    recorded it in PostgreSQL), so the late commit must be refused, and the rebuilt run's
    own delivery of the token records the arrival and does the work."""
    h = Harness(rt)
    h.start(diamond(), {})
    h.deliver()  # A -> B, C
    h.deliver()  # B: D's first arrival, recorded by B's commit
    h.deliver()  # C -> D: completes the join
    recovery.flush(rt, h.run_id)
    token = h.queue.popleft()  # C's token to D: fires it
    begin = rt.state.begin(token, 0.0, None, join=("D|", ("B", "C")))
    assert begin.input == {"B": ["B"], "C": ["C"]}
    rt.redis.delete(*keys.run_keys(h.run_id))  # the loss, mid-delivery
    h.queue.clear()
    h.reconcile()  # rebuilt: a new epoch
    late = rt.state.commit(token, [], 1.0, [], nonce="late", epoch=begin.epoch)
    assert late.state == "stale" and not late.changed
    doc = h.drain()
    assert doc["status"] == "COMPLETED", doc["error"]
    assert doc["nodes"]["D"]["output"] == ["B", "C"]


@pytest.mark.parametrize("same_task", [True, False])
def test_a_redelivered_message_publishes_what_its_task_left(rt: Runtime, same_task: bool) -> None:
    """A task runs n0, then n1 itself (no message), and dies before publishing n2. Its
    message comes back: the redelivery of n0 finds n0 committed by this very message and
    follows the commits made under the same task id to the token left pending, n2. A
    commit made by another message (n1 delivered on its own) is not followed: that
    message's own redelivery answers for it."""
    h = Harness(rt)
    h.start(chain(4))
    ir = rt.ir(h.workflow_id)
    n0 = h.queue.popleft()
    (n1,) = rt.executor.process(ir, n0, nonce="task-1").dispatch
    (n2,) = rt.executor.process(ir, n1, nonce="task-1" if same_task else "task-2").dispatch
    again = rt.executor.process(ir, n0, nonce="task-1")
    assert again.dispatch == ([n2] if same_task else [])
    assert again.ignored is None
    h.queue.append(n2)
    assert h.drain()["status"] == "COMPLETED"


def test_a_redelivered_message_publishes_a_sibling_its_task_kept(rt: Runtime) -> None:
    """A task runs A, then B and C itself (siblings of quick nodes, tasks/inline.py), and
    dies after B, with C kept but not run. The redelivery of A publishes C, and only C:
    B's commit, made under the same task id, emitted nothing left pending."""
    h = Harness(rt)
    h.start(diamond())
    ir = rt.ir(h.workflow_id)
    a = h.queue.popleft()
    b, c = rt.executor.process(ir, a, nonce="task-1").dispatch
    assert rt.executor.process(ir, b, nonce="task-1").dispatch == []  # D waits for C
    again = rt.executor.process(ir, a, nonce="task-1")
    assert again.dispatch == [c]
    h.queue.append(c)
    doc = h.drain()
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["D"]["output"] == ["B", "C"]


def test_a_handler_error_keeps_its_traceback(rt: Runtime) -> None:
    """Each retried attempt's traceback is in its node_retrying event, the last one in
    node_failed and the run document; a CEL error has none (its message says it all)."""
    h = Harness(rt)
    flaky_node = {
        "id": "f",
        "type": "function",
        "config": {"function_name": "rt.flaky", "tag": "traced", "fail_times": 5},
        "retry": {"max_attempts": 2, "backoff_ms": 1},
    }
    h.start({"nodes": [flaky_node], "edges": []})
    first = h.deliver()
    assert first.retrying == (
        "node 'f' attempt 1 failed (RuntimeError: transient failure 1): retrying in 0.001 s"
    )
    h.drain()
    doc = client.get_run(h.run_id, rt)
    events = [e.as_event() for e in rt.store.list_events(h.run_id)]
    (retried,) = [e for e in events if e["type"] == "node_retrying"]
    (failed,) = [e for e in events if e["type"] == "node_failed"]
    for evt, n in ((retried, 1), (failed, 2)):
        assert evt["traceback"].startswith("Traceback (most recent call last)")
        assert "in flaky" in evt["traceback"]
        assert evt["traceback"].rstrip().endswith(f"RuntimeError: transient failure {n}")
    assert doc["nodes"]["f"]["traceback"] == failed["traceback"]

    cel = Harness(rt)
    cel.start({"nodes": [{"id": "d", "type": "transform", "config": {"expression": "1 / 0"}}],
               "edges": []})  # fmt: skip
    cel.drain()
    node = client.get_run(cel.run_id, rt)["nodes"]["d"]
    assert node["status"] == "FAILED" and "traceback" not in node
