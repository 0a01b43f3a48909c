"""The token counter against a real Redis: idempotency, completion, guards, concurrency."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from wfrunner import redisclient
from wfrunner.engine import keys
from wfrunner.engine.counter import ApplyDeltaResult, TokenCounter
from wfrunner.engine.sdk import Sdk
from wfrunner.errors import CounterError


@pytest.fixture()
def counter(redis_client: redis.Redis) -> TokenCounter:
    return TokenCounter(redis_client)


@pytest.fixture()
def run_id() -> str:
    return f"run-{uuid.uuid4().hex}"


class CompletionListener:
    """Counts the completion events of one run (the channel is shared by every database)."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.run_id = run_id
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.subscribe(keys.COMPLETION_CHANNEL)
        self.pubsub.get_message(timeout=1.0)  # the subscribe confirmation

    def count(self, wait: float = 0.3) -> int:
        events = 0
        while (message := self.pubsub.get_message(timeout=wait)) is not None:
            events += message["data"] == self.run_id
        return events


@pytest.fixture()
def listener(state_url: str, run_id: str) -> Iterator[CompletionListener]:
    client = redisclient.connect(state_url, decode_responses=True)
    listening = CompletionListener(client, run_id)
    yield listening
    listening.pubsub.close()
    client.close()


def test_same_op_key_is_applied_once(counter: TokenCounter, run_id: str) -> None:
    counter.initialise(run_id, 1, "init")
    first = counter.apply_delta(run_id, "emit:x", 2)
    second = counter.apply_delta(run_id, "emit:x", 2)
    assert first == ApplyDeltaResult(value=3, changed=True, hit_zero=False)
    assert second == ApplyDeltaResult(value=3, changed=False, hit_zero=False)
    assert counter.get(run_id) == 3


def test_lost_reply_retry_changes_the_value_once(counter: TokenCounter, run_id: str) -> None:
    counter.initialise(run_id, 5, "init")
    op = keys.op_key(run_id, "consume", "A", "B", 1)
    counter.apply_delta(run_id, op, -1)  # the reply of this call is "lost"...
    retry = counter.apply_delta(run_id, op, -1)  # ...so the client sends it again
    assert retry == ApplyDeltaResult(value=4, changed=False, hit_zero=False)
    assert counter.get(run_id) == 4


def test_hit_zero_is_reported_and_published_exactly_once(
    counter: TokenCounter, run_id: str, listener: CompletionListener
) -> None:
    counter.initialise(run_id, 2, "init")
    results = [counter.apply_delta(run_id, op, -1) for op in ("c1", "c2", "c2", "c1")]
    assert [r.hit_zero for r in results] == [False, True, False, False]
    assert [r.value for r in results] == [1, 0, 0, 0]
    assert listener.count() == 1


def test_zero_delta_on_a_finished_run_does_not_complete_it_again(
    counter: TokenCounter, run_id: str, listener: CompletionListener
) -> None:
    counter.initialise(run_id, 1, "init")
    assert counter.apply_delta(run_id, "c1", -1).hit_zero
    assert counter.apply_delta(run_id, "noop", 0) == ApplyDeltaResult(0, True, False)
    assert listener.count() == 1


def test_going_negative_is_refused_and_applies_nothing(counter: TokenCounter, run_id: str) -> None:
    counter.initialise(run_id, 1, "init")
    with pytest.raises(CounterError, match=rf"{run_id}.*'c1'.*negative"):
        counter.apply_delta(run_id, "c1", -2)
    assert counter.get(run_id) == 1
    # the refused op key was not recorded: the corrected call with it is applied
    assert counter.apply_delta(run_id, "c1", -1) == ApplyDeltaResult(0, True, True)


def test_consuming_an_unknown_run_is_refused(counter: TokenCounter, run_id: str) -> None:
    with pytest.raises(CounterError, match="negative"):
        counter.apply_delta(run_id, "c1", -1)
    assert counter.get(run_id) is None


def test_second_loop_pass_counts_but_its_redelivery_does_not(
    counter: TokenCounter, run_id: str
) -> None:
    counter.initialise(run_id, 3, "init")
    pass_1 = keys.op_key(run_id, "consume", "loop", "body", 1)
    pass_2 = keys.op_key(run_id, "consume", "loop", "body", 2)
    assert counter.apply_delta(run_id, pass_1, -1).changed
    assert counter.apply_delta(run_id, pass_2, -1).changed
    assert not counter.apply_delta(run_id, pass_2, -1).changed
    assert counter.get(run_id) == 1


def test_initialise_is_idempotent_and_refuses_a_second_start(
    counter: TokenCounter, run_id: str
) -> None:
    assert counter.initialise(run_id, 2, "init") == ApplyDeltaResult(2, True, False)
    counter.apply_delta(run_id, "c1", -1)
    assert counter.initialise(run_id, 2, "init") == ApplyDeltaResult(1, False, False)
    with pytest.raises(CounterError, match="already exists"):
        counter.initialise(run_id, 2, "another-start")
    with pytest.raises(CounterError, match="integer >= 1"):
        counter.initialise(f"{run_id}-b", 0, "init")


def test_ttl_is_applied_to_the_counter_keys(redis_client: redis.Redis, run_id: str) -> None:
    counter = TokenCounter(redis_client, ttl_seconds=600)
    counter.initialise(run_id, 1, "init")
    counter.apply_delta(run_id, "e1", 1)
    for key in (keys.counter_key(run_id), keys.applied_key(run_id)):
        assert 0 < redis_client.ttl(key) <= 600


def test_all_run_keys_share_a_slot_and_delete_run_removes_them(
    redis_client: redis.Redis, run_id: str
) -> None:
    sdk = Sdk(redis_client)
    counter = sdk.counter
    counter.initialise(run_id, 1, "init")
    sdk.store_output(run_id, "A", {"x": 1})
    written = list(redis_client.scan_iter(match=f"*{run_id}*"))
    assert set(written) <= set(keys.run_keys(run_id))
    assert len(written) == 4
    assert len({key_slot(str(key).encode()) for key in written}) == 1
    assert counter.delete_run(run_id) == 4
    assert list(redis_client.scan_iter(match=f"*{run_id}*")) == []
    assert counter.get(run_id) is None


def test_counter_errors_name_the_run_when_redis_is_unreachable(run_id: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(CounterError, match=run_id):
        TokenCounter(client).apply_delta(run_id, "e1", 1)


THREADS = 8
PAIRS = 1000
SHARED = 200


def _worker(url: str, run_id: str, thread: int, hits: list[int]) -> None:
    """Own +1/-1 pairs, each op sent twice, then racing everyone on the shared ops."""
    client = redisclient.connect(url, decode_responses=True)
    counter = TokenCounter(client)
    for i in range(PAIRS):
        for op, delta in ((f"t{thread}:e{i}", 1), (f"t{thread}:c{i}", -1)):
            for _ in range(2):
                hits.append(counter.apply_delta(run_id, op, delta).hit_zero)
    for j in range(SHARED):
        hits.append(counter.apply_delta(run_id, f"shared:e{j}", 1).hit_zero)
    client.close()


def _drainer(url: str, run_id: str, hits: list[int]) -> None:
    """Every thread races to consume the same SHARED + 1 tokens (the anchor included)."""
    client = redisclient.connect(url, decode_responses=True)
    counter = TokenCounter(client)
    for j in [*range(SHARED), "anchor"]:
        hits.append(counter.apply_delta(run_id, f"shared:c{j}", -1).hit_zero)
    client.close()


def _run_threads(target: object, args: list[tuple[object, ...]]) -> None:
    threads = [threading.Thread(target=target, args=a) for a in args]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_duplicated_deltas_end_exact_and_complete_once(
    state_url: str, redis_client: redis.Redis, run_id: str, listener: CompletionListener
) -> None:
    TokenCounter(redis_client).initialise(run_id, 1, "init")  # the anchor token
    hits: list[int] = []
    _run_threads(_worker, [(state_url, run_id, t, hits) for t in range(THREADS)])
    assert len(hits) == THREADS * (PAIRS * 4 + SHARED)
    assert redis_client.get(keys.counter_key(run_id)) == str(1 + SHARED)
    assert not any(hits)

    _run_threads(_drainer, [(state_url, run_id, hits) for _ in range(THREADS)])
    assert redis_client.get(keys.counter_key(run_id)) == "0"
    assert sum(hits) == 1
    assert listener.count() == 1
    applied = redis_client.scard(keys.applied_key(run_id))
    assert applied == 1 + THREADS * PAIRS * 2 + SHARED * 2 + 1


def test_an_empty_op_key_is_refused(counter: TokenCounter, run_id: str) -> None:
    with pytest.raises(CounterError, match="op key is required"):
        counter.apply_delta(run_id, "", 1)
    assert counter.get(run_id) is None
