"""Redis Cluster slots: the hash tags of the per-slot indexes land in their slots, and
the background shards split the slots without overlap."""

from __future__ import annotations

import uuid

import pytest
from redis.crc import key_slot

from wfrunner.engine import keys, slots


def test_every_slot_tag_hashes_to_its_slot_as_redis_cluster_computes_it() -> None:
    for slot in range(slots.SLOTS):
        tag = slots.slot_tag(slot)
        assert len(tag) <= 4
        assert key_slot(keys.due_key_of_slot(slot).encode()) == slot


def test_a_runs_due_index_lives_in_the_slot_of_its_keys() -> None:
    for _ in range(200):
        run_id = uuid.uuid4().hex
        slot = key_slot(keys.meta_key(run_id).encode())
        assert keys.slot_of_run(run_id) == slot
        assert key_slot(keys.due_key(run_id).encode()) == slot


@pytest.mark.parametrize("shards", [1, 2, 3, 7, 1000, slots.SLOTS])
def test_shards_split_the_slots_without_gap_or_overlap(shards: int) -> None:
    seen: list[int] = []
    for shard in range(shards):
        scope = slots.shard_slots(shard, shards)
        assert all(slots.shard_of_slot(slot, shards) == shard for slot in scope)
        seen += scope
    assert seen == list(range(slots.SLOTS))


def test_nonsense_slots_and_shards_are_refused() -> None:
    with pytest.raises(ValueError, match="slot"):
        slots.slot_tag(slots.SLOTS)
    with pytest.raises(ValueError, match="shard"):
        slots.shard_slots(2, 2)
    with pytest.raises(ValueError, match="shards"):
        slots.shard_of_slot(0, 0)


def test_one_server_shares_an_index_key_per_block_a_cluster_has_one_per_slot() -> None:
    assert keys.index_slot(5000, clustered=True) == 5000
    assert keys.index_slot(5000, clustered=False) == 4096
    assert keys.index_slot(4096, clustered=False) == 4096
    assert keys.due_key("r1", clustered=False) == keys.due_key_of_slot(
        keys.index_slot(keys.slot_of_run("r1"), clustered=False)
    )
    standalone = {keys.due_key(f"run-{i}", clustered=False) for i in range(2000)}
    assert len(standalone) == slots.SLOTS // keys.STANDALONE_BLOCK
