"""The slot scripts on a real Redis: admit_run / release_run (a workflow's run limit) and
take_handler_slot / note_waiting (a handler's limit), their ordering and idempotence."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from wfrunner.engine import handler_slots, keys
from wfrunner.engine.leases import LeaseKeeper
from wfrunner.engine.runstate import RunState
from wfrunner.engine.tokens import Token
from wfrunner.runlimits import RunSlots, workflow_keys


def test_runs_take_free_slots_then_queue_in_submission_order(
    redis_client: redis.Redis,
) -> None:
    slots = RunSlots(redis_client)
    assert slots.admit("etl", "r1", 100, 2).admitted
    assert slots.admit("etl", "r2", 200, 2).admitted
    late = slots.admit("etl", "r4", 400, 2)
    assert (late.admitted, late.position, late.running, late.queued) == (False, 1, 2, 1)
    # a run submitted earlier whose start came later goes before it
    early = slots.admit("etl", "r3", 300, 2)
    assert (early.admitted, early.position) == (False, 1)
    assert slots.usage("etl").queued == ("r3", "r4")


def test_a_start_delivered_again_takes_no_second_slot_and_keeps_its_place(
    redis_client: redis.Redis,
) -> None:
    slots = RunSlots(redis_client)
    for run_id, score in (("r1", 1), ("r2", 2), ("r3", 3)):
        slots.admit("etl", run_id, score, 1)
    assert slots.admit("etl", "r1", 1, 1).admitted
    again = slots.admit("etl", "r3", 999, 1)
    assert (again.admitted, again.position) == (False, 2)
    usage = slots.usage("etl")
    assert (usage.running, usage.queued, usage.max_runs) == (("r1",), ("r2", "r3"), 1)


def test_a_release_gives_the_slot_to_the_oldest_queued_run_once(
    redis_client: redis.Redis,
) -> None:
    slots = RunSlots(redis_client)
    for run_id, score in (("r1", 1), ("r2", 2), ("r3", 3)):
        slots.admit("etl", run_id, score, 1)
    assert slots.release("etl", "r1", 1) == ["r2"]
    assert slots.release("etl", "r1", 1) == []  # released again: nothing more moves
    assert slots.usage("etl").running == ("r2",)
    assert slots.admit("etl", "r2", 2, 1).admitted  # its start finds the slot
    # a queued run cancelled leaves the queue; a release then has no one to promote
    assert slots.release("etl", "r3", 1) == []
    assert slots.release("etl", "r2", None) == []
    usage = slots.usage("etl")
    assert (usage.running, usage.queued) == ((), ())


def test_a_larger_limit_fills_the_new_slots_from_the_queue(redis_client: redis.Redis) -> None:
    slots = RunSlots(redis_client)
    for run_id, score in (("r1", 1), ("r2", 2), ("r3", 3)):
        slots.admit("etl", run_id, score, 1)
    got = slots.admit("etl", "r4", 4, 3)  # a new version allows 3: the older runs first
    assert (got.admitted, got.position, got.promoted) == (False, 1, ("r2", "r3"))
    usage = slots.usage("etl")
    assert (set(usage.running), usage.queued) == ({"r1", "r2", "r3"}, ("r4",))


def test_workflow_names_keep_to_their_own_hash_tag(redis_client: redis.Redis) -> None:
    RunSlots(redis_client).admit("a b/{c}", "r1", 1, 1)
    assert workflow_keys("a b/{c}")[0] == "wfr:{wf:a%20b%2F%7Bc%7D}:slots"
    assert RunSlots(redis_client).names() == ["a b/{c}"]


def _slots(redis_client: redis.Redis) -> handler_slots.HandlerSlots:
    state = RunState(redis_client, lease_seconds=3.0)
    return handler_slots.HandlerSlots(redis_client, LeaseKeeper(state, 3.0))


def _running_run(redis_client: redis.Redis, run_id: str) -> Token:
    redis_client.hset(keys.meta_key(run_id), mapping={"state": "running", "activity": "0"})
    return Token.entry(run_id, "charge")


def test_a_handler_slot_is_taken_up_to_the_limit_and_given_back(
    redis_client: redis.Redis,
) -> None:
    slots = _slots(redis_client)
    token = _running_run(redis_client, "run1")
    key = handler_slots.handler_keys("charge")[0]
    with (
        slots.hold("charge", 2, token, "h1") as first,
        slots.hold("charge", 2, token, "h2") as second,
    ):
        assert (first, second) == (None, None)
        with slots.hold("charge", 2, token, "h3") as third:
            assert third is not None and third.retry_in is not None
            assert third.reason.startswith("waiting for handler 'charge' slots (2 of 2 busy)")
            assert 0 < third.retry_in <= handler_slots.LOOK_AGAIN_MAX
        assert redis_client.zcard(key) == 2
        note = json.loads(redis_client.hget(keys.waiting_key("run1"), "charge") or "{}")
        assert note["for"] == "handler 'charge' slots (2 of 2 busy)"
        assert float(redis_client.hget(keys.meta_key("run1"), "activity") or 0) > 0
    assert redis_client.zcard(key) == 0
    assert handler_slots.usage(redis_client)[0].to_dict() == {
        "handler": "charge",
        "max_concurrency": 2,
        "busy": 0,
    }


def test_a_slot_not_renewed_expires_and_one_renewed_does_not(redis_client: redis.Redis) -> None:
    slots = _slots(redis_client)
    token = _running_run(redis_client, "run1")
    key = handler_slots.handler_keys("charge")[0]
    kept: list[Any] = []
    with slots.hold("charge", 1, token, "live") as got:
        assert got is None
        # a dead worker's slot: held by no process, about to expire
        redis_client.zadd(key, {"dead": time.time() - 1})
        time.sleep(2.0)
        slots.renew(3.0)  # the heartbeat extends "live" only
        time.sleep(1.5)
        with slots.hold("charge", 2, token, "other") as kept_wait:
            kept.append(kept_wait)
        assert set(redis_client.zrange(key, 0, -1)) == {"live"}
    assert kept == [None]


def test_waiting_in_an_ended_run_is_not_looked_at_again(redis_client: redis.Redis) -> None:
    slots = _slots(redis_client)
    token = _running_run(redis_client, "run1")
    redis_client.hset(keys.meta_key("run1"), "state", "cancelled")
    with slots.hold("charge", 1, token, "h1"), slots.hold("charge", 1, token, "h2") as wait:
        assert wait is not None and (wait.reason, wait.retry_in) == ("run is cancelled", None)
    assert not redis_client.exists(keys.waiting_key("run1"))
