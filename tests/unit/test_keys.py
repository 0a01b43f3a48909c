"""Run keys and op keys: hash-tagged, deterministic, one per token and action."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from wfrunner.engine import keys
from wfrunner.engine.tokens import Token

node_ids = st.text(alphabet="abcAB01_->:@%^*", min_size=1, max_size=6)
run_ids = st.text(alphabet="abcdef0123456789-:", min_size=1, max_size=12)


def test_all_run_keys_share_one_hash_tag() -> None:
    run_keys = keys.run_keys("r-1")
    assert all(key.startswith("wfr:{r-1}:") for key in run_keys)
    assert len({key_slot(key.encode()) for key in run_keys}) == 1
    assert len(set(run_keys)) == len(run_keys)
    assert keys.counter_key("r-1") in run_keys
    assert keys.applied_key("r-1") in run_keys


@pytest.mark.parametrize("run_id", ["", "a{b", "a}b"])
def test_run_ids_that_would_break_the_hash_tag_are_refused(run_id: str) -> None:
    with pytest.raises(ValueError, match="run id"):
        keys.counter_key(run_id)


def test_op_key_format() -> None:
    assert keys.op_key("r1", "consume", "A", "B", 2) == "consume:r1:A->B@2"
    assert keys.op_key("r1", "consume", None, "A", 1) == "consume:r1:^->A@1"
    assert keys.op_key("r1", "init", None, None, 1) == "init:r1:^->*@1"


def test_op_key_is_deterministic_and_distinct_per_iteration_edge_and_action() -> None:
    base = keys.op_key("r1", "consume", "A", "B", 1)
    assert base == keys.op_key("r1", "consume", "A", "B", 1)
    variants = [
        keys.op_key("r1", "consume", "A", "B", 2),
        keys.op_key("r1", "consume", "A", "C", 1),
        keys.op_key("r1", "consume", "C", "B", 1),
        keys.op_key("r1", "consume", None, "B", 1),
        keys.op_key("r1", "emit", "A", "B", 1),
        keys.op_key("r1", "advance", "A", "B", 1),
        keys.op_key("r2", "consume", "A", "B", 1),
    ]
    assert len({base, *variants}) == len(variants) + 1


@given(
    st.tuples(run_ids, node_ids, node_ids, st.integers(1, 5)),
    st.tuples(run_ids, node_ids, node_ids, st.integers(1, 5)),
)
def test_op_keys_of_distinct_tokens_never_collide(
    a: tuple[str, str, str, int], b: tuple[str, str, str, int]
) -> None:
    # within one run the separators cannot be forged by node ids (they are quoted)
    key_a = keys.op_key(a[0], "consume", a[1], a[2], a[3])
    key_b = keys.op_key(a[0], "consume", b[1], b[2], b[3])
    assert (key_a == key_b) == (a[1:] == b[1:])


@pytest.mark.parametrize(
    ("action", "iteration"), [("Consume", 1), ("con:sume", 1), ("", 1), ("consume", 0)]
)
def test_op_key_refuses_bad_action_or_iteration(action: str, iteration: int) -> None:
    with pytest.raises(ValueError):
        keys.op_key("r1", action, "A", "B", iteration)


def test_token_round_trips_through_json() -> None:
    entry = Token.entry("r1", "A", payload_ref="f" * 64)
    child = entry.child("B").child("C", iteration=3)
    for token in (entry, child):
        assert Token.from_dict(json.loads(json.dumps(token.to_dict()))) == token
    assert child == Token("r1", "B", "C", None, hop=2, iteration=3)


@given(
    st.builds(
        Token,
        run_id=run_ids,
        from_node=st.none() | node_ids,
        to_node=node_ids,
        payload_ref=st.none() | st.text(max_size=64),
        hop=st.integers(0, 1000),
        iteration=st.integers(1, 1000),
    )
)
def test_any_token_round_trips(token: Token) -> None:
    assert Token.from_dict(json.loads(json.dumps(token.to_dict()))) == token


def test_token_op_key_delegates_to_keys() -> None:
    token = Token("r1", "A", "B", hop=1, iteration=2)
    assert token.op_key("consume") == keys.op_key("r1", "consume", "A", "B", 2)
    assert Token.entry("r1", "A").op_key("consume") == "consume:r1:^->A@1"


def test_token_refuses_impossible_hop_or_iteration() -> None:
    with pytest.raises(ValueError):
        Token("r1", None, "A", hop=-1)
    with pytest.raises(ValueError):
        Token("r1", None, "A", iteration=0)
