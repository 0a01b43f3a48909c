"""The reconciler's due index on the real Redis and PostgreSQL (wfrunner/reconciler.py):
a pass looks at the runs whose next look has come, and only at those; each look moves the
run's next look on; a dead worker's lease is found at its expiry while the run goes on."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.harness import Harness
from wfrunner import handlers, reconciler, recovery
from wfrunner.engine import keys, slots
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime
from wfrunner.states import RunStatus


@handlers.handler("due.echo")
def echo(value: Any, config: dict[str, Any]) -> Any:
    return {"node": config["node"]}


def _node(node_id: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "function",
        "config": {"function_name": "due.echo", "node": node_id},
    }


def chain(n: int) -> dict[str, Any]:
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"nodes": [_node(f"n{i}") for i in range(n)], "edges": edges}


def _look(rt: Runtime, run_id: str) -> float | None:
    return rt.redis.zscore(rt.state.due_key(run_id), run_id)  # type: ignore[return-value]


def _come(rt: Runtime, run_id: str) -> None:
    """The run's next look has come (the time the index holds for it passed)."""
    rt.redis.zadd(rt.state.due_key(run_id), {run_id: 0}, xx=True)


def _idle(rt: Runtime, run_id: str) -> None:
    rt.redis.hset(keys.meta_key(run_id), "activity", 0)


def _published(rt: Runtime, shards: list[int] | None = None) -> dict[str, list[Token]]:
    return reconciler.reconcile(rt, shards)


@pytest.fixture()
def h(rt: Runtime) -> Harness:
    harness = Harness(rt)
    harness.start(chain(3), {})
    assert _published(rt) == {}  # the first pass on this Redis: a full pass, indexing
    return harness


def test_a_run_is_in_the_index_from_its_start_to_its_end(rt: Runtime) -> None:
    h = Harness(rt)
    before = time.time()
    h.start(chain(2), {})
    look = _look(rt, h.run_id)
    stall = 3 * rt.settings.reconcile_interval
    assert look is not None and before + stall <= look <= time.time() + stall
    assert h.drain()["status"] == "COMPLETED"
    assert _look(rt, h.run_id) is None


def test_a_run_is_looked_at_only_once_its_next_look_has_come(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()  # its message is lost
    _idle(rt, h.run_id)  # idle for ages: a look would publish the token again
    assert _published(rt) == {}  # not due yet: not looked at
    _come(rt, h.run_id)
    assert _published(rt) == {h.run_id: [token]}
    # the token is marked republished for the visibility timeout: the next look then
    hold = rt.settings.visibility_timeout
    look = _look(rt, h.run_id)
    assert look is not None and time.time() + hold - 5 < look <= time.time() + hold
    assert _published(rt) == {}


def test_a_live_lease_pushes_the_next_look_to_its_expiry(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="long", lease=600)  # a long node
    _idle(rt, h.run_id)
    _come(rt, h.run_id)
    assert _published(rt) == {}
    until = rt.state.leases(h.run_id)[token.key].until
    assert _look(rt, h.run_id) == pytest.approx(until, abs=0.01)  # not the next pass


def test_a_dead_workers_lease_is_found_at_its_expiry_while_the_run_goes_on(rt: Runtime) -> None:
    """Two branches: one's worker dies holding a short lease; the other commits (the
    run is not idle) and that commit brings the run's next look to the lease's end."""
    h = Harness(rt)
    h.start({"nodes": [_node("a"), _node("b"), _node("c")], "edges": [{"from": "b", "to": "c"}]})
    assert _published(rt) == {}
    a = next(t for t in h.queue if t.to_node == "a")
    h.queue.remove(a)
    rt.state.begin(a, time.time(), None, holder="dead", lease=1)
    time.sleep(rt.settings.flush_interval + 0.1)  # the next commit is a flush's: it moves the look
    h.deliver()  # b commits, c is emitted
    look = _look(rt, h.run_id)
    assert look is not None and look <= time.time() + 1
    time.sleep(1.2)  # the lease expires
    h.deliver()  # c commits: the run goes on, it is not idle
    assert _published(rt) == {h.run_id: [a]}


def test_an_approvals_deadline_brings_the_next_look_to_it(rt: Runtime) -> None:
    h = Harness(rt)
    h.start({"nodes": [{"id": "gate", "type": "human", "timeout_ms": 500}], "edges": []})
    assert _published(rt) == {}  # (the full pass: the index is built)
    before = time.time()
    h.deliver()  # the request: the run waits, holding nothing
    look = _look(rt, h.run_id)
    # (the index keeps milliseconds, rounded: up to half of one past the clock)
    assert look is not None and before + 0.5 <= look <= time.time() + 0.501
    time.sleep(0.6)
    assert [t.to_node for t in _published(rt)[h.run_id]] == ["gate"]  # its deadline passed


def test_a_due_run_redis_holds_at_an_older_generation_is_rebuilt(rt: Runtime, h: Harness) -> None:
    """Redis came back from a snapshot and the restart went unnoticed: the run's hot
    state is a generation PostgreSQL moved past; its next look finds it."""
    h.deliver()  # n0 commits, n1 is emitted
    recovery.flush(rt, h.run_id)  # PostgreSQL accepts generation 1, both move to 2
    epoch = rt.state.meta(h.run_id)["epoch"]
    rt.redis.hset(keys.meta_key(h.run_id), "gen", 1)  # the snapshot's generation
    _come(rt, h.run_id)
    published = _published(rt)
    assert [t.to_node for t in published[h.run_id]] == ["n1"]
    assert rt.state.meta(h.run_id)["epoch"] != epoch  # rebuilt: a new epoch


def test_runs_started_before_the_upgrade_are_indexed_by_the_first_pass(
    rt: Runtime, h: Harness
) -> None:
    rt.redis.zrem(rt.state.due_key(h.run_id), h.run_id)  # started by a release without the index
    assert _published(rt) == {}
    assert _look(rt, h.run_id) is None  # the index was built: no pass reads PostgreSQL's list
    rt.redis.delete(keys.INDEXED_KEY)  # the first pass after the upgrade
    _published(rt)
    look = _look(rt, h.run_id)
    assert look is not None and look <= time.time() + 3 * rt.settings.reconcile_interval


def test_each_shard_looks_at_the_runs_of_its_own_slots(rt: Runtime) -> None:
    assert rt.settings.background_shards >= 2
    runs = [Harness(rt) for _ in range(8)]
    for h in runs:
        h.start(chain(2), {})
    _published(rt)
    for h in runs:
        h.queue.clear()  # every message lost
        _idle(rt, h.run_id)
        _come(rt, h.run_id)
    shard = rt.state.shard_of(runs[0].run_id)
    mine = {h.run_id for h in runs if rt.state.shard_of(h.run_id) == shard}
    assert set(reconciler.due_pass(rt, shard)) == mine
    assert set(_published(rt)) == {h.run_id for h in runs} - mine


def test_the_sweep_drops_hot_state_of_ended_runs_a_step_at_a_time(rt: Runtime, h: Harness) -> None:
    """Hot state with no index entry (a Redis brought back from a snapshot) of a run that
    ended is found by the incremental SCAN, not by a whole SCAN on every pass."""
    rt.redis.zrem(rt.state.due_key(h.run_id), h.run_id)
    assert rt.store.transition_run(h.run_id, RunStatus.CANCELLED)
    dropped = 0
    for _ in range(100_000):
        dropped += reconciler.sweep_step(rt, count=10)
        if set(rt.redis.hvals(keys.SWEEP_KEY)) == {"0"}:  # every master's scan went round
            break
    assert dropped == 1
    assert not rt.state.meta(h.run_id)


def test_a_slot_range_finds_only_its_own_runs_whatever_the_index_keys(rt: Runtime) -> None:
    """A third of the slots is not a whole number of index blocks on one Redis server:
    runs of the same index key outside the range are left out (on a cluster each slot
    has its own key)."""
    scope = slots.shard_slots(1, 3)
    shared = {keys.index_slot(scope[0], False), keys.index_slot(scope[-1], False)}
    runs: list[Harness] = []
    while len(runs) < 400:  # until a run outside the range shares an index key with it
        h = Harness(rt)
        h.start(chain(2), {})
        _come(rt, h.run_id)
        runs.append(h)
        slot = keys.slot_of_run(h.run_id)
        if slot not in scope and keys.index_slot(slot, False) in shared:
            break
    due = rt.state.due_runs(scope, time.time(), 100)
    assert set(due) == {h.run_id for h in runs if keys.slot_of_run(h.run_id) in scope}
