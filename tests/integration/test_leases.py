"""Token leases against the real Redis and PostgreSQL: who may run a token, whose lease a
heartbeat renews, what the reconciler publishes again, and what keeps a run from timing
out. The real-process versions (long nodes, killed workers) are in tests/fault."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.harness import Harness
from wfrunner import handlers, lifecycle, recovery, redisclient
from wfrunner.engine import keys
from wfrunner.engine.leases import LeaseKeeper
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime

CALLS: list[str] = []


@handlers.handler("lease.count")
def count(value: Any, config: dict[str, Any]) -> Any:
    CALLS.append(config["node"])
    return {"node": config["node"]}


def chain(n: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "type": "function", "config": {"function_name": "lease.count", "node": i}}
        for i in range(n)
    ]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"nodes": nodes, "edges": edges}


@pytest.fixture()
def h(rt: Runtime) -> Harness:
    CALLS.clear()
    harness = Harness(rt)
    harness.start(chain(3), {})
    return harness


def _entry(rt: Runtime, token: Token) -> str | None:
    return rt.redis.hget(keys.running_key(token.run_id), token.key)  # type: ignore[return-value]


def _idle(rt: Runtime, run_id: str, idle: bool) -> None:
    """Make the run look idle (or not): its last activity long ago, and its next look in
    the reconciler's due index come (as they would be once the stall time has passed)."""
    rt.redis.hset(keys.meta_key(run_id), "activity", 0 if idle else time.time())
    if idle:
        _due(rt, run_id)


def _due(rt: Runtime, run_id: str) -> None:
    """The run's next look has come (the time the reconciler chose for it passed)."""
    rt.redis.zadd(rt.state.due_key(run_id), {run_id: 0}, xx=True)


def test_a_live_lease_keeps_a_second_delivery_from_running_the_node(
    rt: Runtime, h: Harness
) -> None:
    token = h.queue.popleft()
    first = rt.state.begin(token, time.time(), None, holder="first")
    assert first.attempt == 1 and not first.busy_for
    outcome = h.process(token)  # the broker gave the message out again
    assert outcome.ignored and "another delivery is running it" in outcome.ignored
    assert outcome.retry_in is not None and 10 < outcome.retry_in <= rt.settings.lease_seconds + 1
    assert CALLS == []
    assert rt.redis.hget(keys.attempts_key(h.run_id), token.key) == "1"  # not an attempt
    assert not [e for e in rt.state.events(h.run_id) if e["type"] == "node_started"]


def test_an_expired_lease_is_taken_over_and_counted_as_an_attempt(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="dead", lease=0)
    outcome = h.process(token)
    assert outcome.ignored is None and [t.to_node for t in outcome.dispatch] == ["n1"]
    assert CALLS == [0]
    assert rt.redis.hget(keys.attempts_key(h.run_id), token.key) == "2"
    assert _entry(rt, token) is None  # the commit released the lease


def test_renewal_extends_only_the_holders_own_lease(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="mine", lease=5)
    before = _entry(rt, token)
    assert rt.state.renew({h.run_id: {token.key: "someone-else"}}, 60) == [token.key]
    assert _entry(rt, token) == before
    assert rt.state.renew({h.run_id: {token.key: "someone-else"}}, 0) == [token.key]
    assert _entry(rt, token) == before  # nor released by another holder
    assert rt.state.renew({h.run_id: {token.key: "mine"}}, 60) == []
    until, holder = str(_entry(rt, token)).split("|")
    assert holder == "mine" and float(until) > rt.state.clock() + 50
    assert rt.state.renew({h.run_id: {token.key: "mine"}}, 0) == []
    assert _entry(rt, token) is None


def test_renewal_loads_its_script_where_redis_lost_it(rt: Runtime, h: Harness) -> None:
    """Every master forgot its scripts (one just promoted from a replica, or restarted): a
    Redis Cluster's pipeline does not load them first, so the renewal loads it and sends
    again. (One server's pipeline loads them itself: the test matters with
    WFRUNNER_TEST_STATE=cluster.)"""
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="mine", lease=5)
    for master in redisclient.primaries(rt.redis):
        master.script_flush()
    assert rt.state.renew({h.run_id: {token.key: "mine"}}, 60) == []
    assert float(str(_entry(rt, token)).split("|")[0]) > rt.state.clock() + 50


def test_renewal_fails_once_the_token_is_committed_or_the_run_ended(
    rt: Runtime, h: Harness
) -> None:
    token = h.queue[0]
    rt.state.begin(token, time.time(), None, holder="late", lease=0)
    h.deliver()  # another delivery took the expired lease over and committed
    assert rt.state.renew({h.run_id: {token.key: "late"}}, 60) == [token.key]
    second = h.queue[0]
    rt.state.begin(second, time.time(), None, holder="h2")
    lifecycle.fail(rt, h.run_id, "cancelled by the test", kind="cancelled")
    assert rt.state.renew({h.run_id: {second.key: "h2"}}, 60) == [second.key]


def test_heartbeat_keeps_a_lease_live_past_its_period_and_stops_after(
    rt: Runtime, h: Harness
) -> None:
    token = h.queue.popleft()
    keeper = LeaseKeeper(rt.state, lease_seconds=3)
    rt.state.begin(token, time.time(), None, holder="beating", lease=3)
    try:
        with keeper.hold(h.run_id, token.key, "beating"):
            time.sleep(5)  # longer than the lease: only the heartbeat keeps it
            assert rt.state.begin(token, time.time(), None, holder="other").busy_for > 0
        time.sleep(3.5)  # no longer renewed: it expires
        assert rt.state.begin(token, time.time(), None, holder="other").busy_for == 0
    finally:
        keeper.close()


def test_a_delivery_that_raises_releases_its_lease(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()
    keeper = LeaseKeeper(rt.state, lease_seconds=60)
    rt.state.begin(token, time.time(), None, holder="raising", lease=60)
    with pytest.raises(RuntimeError), keeper.hold(h.run_id, token.key, "raising"):
        raise RuntimeError("Redis refused the commit")
    keeper.close()
    assert _entry(rt, token) is None
    assert rt.state.begin(token, time.time(), None, holder="retry-of-task").busy_for == 0


def test_reconciler_republishes_an_expired_lease_even_while_the_run_is_active(
    rt: Runtime, h: Harness
) -> None:
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="dead", lease=0)
    _idle(rt, h.run_id, False)  # other branches progress
    h.reconcile()
    assert list(h.queue) == [token]
    assert str(_entry(rt, token)).endswith("|republished")
    h.reconcile()  # marked: not published again on the next pass
    assert list(h.queue) == [token]
    assert h.drain()["status"] == "COMPLETED"


def test_reconciler_leaves_a_live_lease_alone_even_when_the_run_is_idle(
    rt: Runtime, h: Harness
) -> None:
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="alive")
    _idle(rt, h.run_id, True)
    h.reconcile()
    assert not h.queue


def test_reconciler_publishes_an_unbegun_token_only_when_the_run_is_idle(
    rt: Runtime, h: Harness
) -> None:
    token = h.queue.popleft()  # its message is lost (or waits in a long queue)
    _idle(rt, h.run_id, False)
    h.reconcile()
    assert not h.queue
    _idle(rt, h.run_id, True)
    h.reconcile()
    assert list(h.queue) == [token]


def test_a_retry_is_not_republished_before_it_is_due(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="failing")
    assert rt.state.record(h.run_id, [], token, time.time() + 60)
    _idle(rt, h.run_id, True)
    h.reconcile()
    assert not h.queue
    assert rt.state.record(h.run_id, [], token, time.time() - 1)  # overdue: its message lost
    _due(rt, h.run_id)  # (the retry's due time, the run's next look, passed)
    h.reconcile()
    assert list(h.queue) == [token]


@pytest.fixture()
def short_timeout_rt(rt: Runtime) -> Iterator[Runtime]:
    runtime = Runtime(replace(rt.settings, run_timeout=1))
    yield runtime
    runtime.close()


@pytest.mark.parametrize("holding", ["lease", "retry"])
def test_a_running_node_or_pending_retry_keeps_its_run_from_timing_out(
    short_timeout_rt: Runtime, holding: str
) -> None:
    rt = short_timeout_rt
    h = Harness(rt)
    h.start(chain(2), {})
    token = h.queue.popleft()
    rt.state.begin(token, 0.0, None, holder="long")  # activity 0: idle for ages
    if holding == "retry":
        rt.state.record(h.run_id, [], token, time.time() + 60)
    time.sleep(1.5)  # PostgreSQL's last activity is older than the run timeout
    assert lifecycle.expire_idle_runs(rt) == []
    assert rt.store.get_run(h.run_id).status.value == "RUNNING"
    rt.redis.hdel(keys.running_key(h.run_id), token.key)  # its worker and message are gone
    time.sleep(1.5)
    assert lifecycle.expire_idle_runs(rt) == [h.run_id]


def test_stalled_tokens_is_the_reconcilers_choice(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()
    rt.state.begin(token, time.time(), None, holder="dead", lease=0)
    assert recovery.stalled_tokens(rt, h.run_id, 3.0) == [token]
    assert recovery.stalled_tokens(rt, h.run_id, 3.0) == []


def test_a_lost_lease_is_reported_once_and_never_taken_back(rt: Runtime, h: Harness) -> None:
    token = h.queue.popleft()
    keeper = LeaseKeeper(rt.state, lease_seconds=60)
    rt.state.begin(token, time.time(), None, holder="mine", lease=60)
    try:
        with keeper.hold(h.run_id, token.key, "mine"):
            rt.redis.hdel(keys.running_key(h.run_id), token.key)  # e.g. the run was rebuilt
            assert keeper.renew_now() == [token.key]
            assert keeper.renew_now() == []  # no longer renewed
            assert _entry(rt, token) is None
    finally:
        keeper.close()
