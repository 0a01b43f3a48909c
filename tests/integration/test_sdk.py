"""The SDK against a real Redis: token flows, payloads and the run context."""

from __future__ import annotations

import uuid

import pytest
import redis

from wfrunner import redisclient
from wfrunner.engine import keys
from wfrunner.engine.payloads import canonical_json, load_payload, payload_ref, store_payload
from wfrunner.engine.sdk import Sdk
from wfrunner.engine.tokens import Token
from wfrunner.errors import CounterError, PayloadError


@pytest.fixture()
def sdk(redis_client: redis.Redis) -> Sdk:
    return Sdk(redis_client, max_payload_bytes=1024)


@pytest.fixture()
def run_id() -> str:
    return f"run-{uuid.uuid4().hex}"


def test_diamond_with_advance_completes_only_on_the_last_token(sdk: Sdk, run_id: str) -> None:
    """A -> (B, C) -> D: D is a join; the run completes when D finishes, not before."""
    a = Token.entry(run_id, "A")
    assert sdk.initialise_counter(run_id, [a]).value == 1
    b, c = a.child("B"), a.child("C")
    assert sdk.advance(a, [b, c]).value == 2
    b_to_d, c_to_d = b.child("D"), c.child("D")
    assert sdk.advance(b, [b_to_d]).value == 2
    assert sdk.advance(c, [c_to_d]).value == 2
    # the join: the first arrival only consumes, the last one fires D
    assert sdk.consume(b_to_d).value == 1
    assert sdk.get_counter(run_id) == 1
    d_done = sdk.advance(c_to_d, [])
    assert (d_done.value, d_done.hit_zero) == (0, True)


def test_redelivered_advance_is_applied_once(sdk: Sdk, run_id: str) -> None:
    a = Token.entry(run_id, "A")
    sdk.initialise_counter(run_id, [a])
    emitted = [a.child("B"), a.child("C")]
    first = sdk.advance(a, emitted)
    again = sdk.advance(a, emitted)
    assert (first.changed, again.changed) == (True, False)
    assert sdk.get_counter(run_id) == 2


def test_consume_then_emit_primitives(sdk: Sdk, run_id: str) -> None:
    a = Token.entry(run_id, "A", payload_ref="ref-in")
    sdk.initialise_counter(run_id, [a])
    tokens = sdk.emit(a, run_id, ["B", "C"], payload_ref="ref-out")
    assert tokens == [
        Token(run_id, "A", "B", "ref-out", hop=1, iteration=1),
        Token(run_id, "A", "C", "ref-out", hop=1, iteration=1),
    ]
    assert sdk.emit(a, run_id, ["B", "C"], payload_ref="ref-out") == tokens  # redelivery
    assert sdk.get_counter(run_id) == 3
    assert sdk.consume(a).value == 2
    assert not sdk.consume(a).changed
    for token in tokens:
        last = sdk.consume(token)
    assert last.hit_zero


def test_emit_from_a_node_id_and_loop_back(sdk: Sdk, run_id: str) -> None:
    a = Token.entry(run_id, "A")
    sdk.initialise_counter(run_id, [a])
    # the loop node L sends the body B round again: iteration 2 of the same edge counts
    first = sdk.emit("L", run_id, ["B"], iteration=1, hop=3)
    second = sdk.emit("L", run_id, ["B"], iteration=2, hop=5)
    assert sdk.emit("L", run_id, ["B"], iteration=2, hop=5) == second
    assert sdk.get_counter(run_id) == 3
    assert first[0].op_key("consume") != second[0].op_key("consume")
    with pytest.raises(ValueError, match="hop"):
        sdk.emit("L", run_id, ["B"], iteration=3)


def test_loop_back_token_from_advance(sdk: Sdk, run_id: str) -> None:
    body = Token.entry(run_id, "body")
    sdk.initialise_counter(run_id, [body])
    to_loop = body.child("loop")
    sdk.advance(body, [to_loop])
    back = to_loop.child("body", iteration=2)
    sdk.advance(to_loop, [back])
    again = back.child("loop")
    sdk.advance(back, [again])
    assert not sdk.advance(back, [again]).changed
    assert sdk.advance(again, []).hit_zero


def test_emissions_and_starts_refuse_repeated_or_foreign_tokens(sdk: Sdk, run_id: str) -> None:
    a = Token.entry(run_id, "A")
    with pytest.raises(ValueError, match="repeat"):
        sdk.initialise_counter(run_id, [a, a])
    with pytest.raises(ValueError, match="entry token"):
        sdk.initialise_counter(run_id, [a.child("B")])
    sdk.initialise_counter(run_id, [a])
    with pytest.raises(ValueError, match="repeat"):
        sdk.emit(a, run_id, ["B", "B"])
    with pytest.raises(ValueError, match="not emitted by"):
        sdk.advance(a, [Token(run_id, "X", "B", hop=1)])
    assert sdk.get_counter(run_id) == 1


def test_consuming_more_than_in_flight_is_a_counter_error(sdk: Sdk, run_id: str) -> None:
    a = Token.entry(run_id, "A")
    sdk.initialise_counter(run_id, [a])
    sdk.consume(a)
    with pytest.raises(CounterError, match="negative"):
        sdk.consume(a.child("B"))


def test_payloads_are_stored_once_per_value(redis_client: redis.Redis, run_id: str) -> None:
    value = {"b": [1, 2.5, None], "a": "é"}
    ref = store_payload(redis_client, run_id, value, 1024)
    assert ref == store_payload(redis_client, run_id, {"a": "é", "b": [1, 2.5, None]}, 1024)
    assert ref == payload_ref(canonical_json(value))
    assert redis_client.hlen(keys.payloads_key(run_id)) == 1
    assert load_payload(redis_client, run_id, ref) == value
    assert store_payload(redis_client, run_id, [1], 1024) != ref


def test_payload_limits_and_errors(redis_client: redis.Redis, run_id: str) -> None:
    with pytest.raises(PayloadError, match=r"\d+ bytes, over the limit of 10 bytes"):
        store_payload(redis_client, run_id, "x" * 20, 10)
    with pytest.raises(PayloadError, match="not JSON"):
        store_payload(redis_client, run_id, {"when": object()}, 1024)
    with pytest.raises(PayloadError, match="not JSON"):
        store_payload(redis_client, run_id, float("nan"), 1024)
    with pytest.raises(PayloadError, match="no payload"):
        load_payload(redis_client, run_id, "0" * 64)
    assert list(redis_client.scan_iter(match=f"*{run_id}*")) == []


def test_context_round_trip(sdk: Sdk, run_id: str) -> None:
    assert sdk.load_context(run_id) == {}
    ref_a = sdk.store_output(run_id, "A", {"n": 1})
    sdk.store_output(run_id, "B", [1, 2])
    assert sdk.load_payload(run_id, ref_a) == {"n": 1}
    assert sdk.load_context(run_id) == {"A": {"n": 1}, "B": [1, 2]}
    sdk.store_output(run_id, "A", {"n": 2})  # a loop's next pass: the latest output wins
    sdk.store_context(run_id, "C", ref_a)
    assert sdk.load_context(run_id) == {"A": {"n": 2}, "B": [1, 2], "C": {"n": 1}}
    with pytest.raises(PayloadError, match="over the limit"):
        sdk.store_output(run_id, "D", "x" * 2000)


def test_context_naming_a_missing_payload_is_an_error(sdk: Sdk, run_id: str) -> None:
    sdk.store_context(run_id, "A", "0" * 64)
    with pytest.raises(PayloadError, match="node 'A'"):
        sdk.load_context(run_id)


def test_sdk_works_on_a_bytes_client(state_url: str, redis_client: redis.Redis) -> None:
    run_id = f"run-{uuid.uuid4().hex}"
    client = redisclient.connect(state_url)  # decode_responses=False
    sdk = Sdk(client, ttl_seconds=600)
    a = Token.entry(run_id, "A")
    sdk.initialise_counter(run_id, [a])
    sdk.store_output(run_id, "A", {"ok": True})
    assert sdk.load_context(run_id) == {"A": {"ok": True}}
    assert sdk.get_counter(run_id) == 1
    assert 0 < redis_client.ttl(keys.context_key(run_id)) <= 600
    assert sdk.delete_run(run_id) == 4
    client.close()
