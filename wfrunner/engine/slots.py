"""Redis Cluster slots, the hash tags that land in each, and the shards of background work.

A Lua script may only touch keys of one slot. The cross-run indexes the background
passes read (the due index, :mod:`wfrunner.engine.keys` ``due_key``) are updated by a
run's own scripts in the same call as its state, so they must live in the run's slot: one
index key per slot, named with a short hash tag that hashes to that slot. The tags are
found once per process by trying short strings in order (about 90,000 CRC16s, some tens
of milliseconds) and are the same in every process and release: the first string, in
that order, of each slot.

A background shard is a contiguous range of slots: shard ``i`` of ``n`` covers slots
``[i * 16384 // n, (i + 1) * 16384 // n)``. Two shards never share a slot, so never a run.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Iterator

#: Redis Cluster's hash slots
SLOTS = 16384
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def slot_of(tag: str) -> int:
    """The slot of every key whose hash tag is ``tag`` (CRC16/XMODEM, as Redis Cluster)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


def _strings() -> Iterator[str]:
    """ "0", "1", ..., "z", "10", ...: short tags, shortest first."""
    n = 0
    while True:
        value, text = n, ""
        while True:
            value, digit = divmod(value, len(_ALPHABET))
            text = _ALPHABET[digit] + text
            if not value:
                break
        yield text
        n += 1


@functools.cache
def _tags() -> tuple[str, ...]:
    found: list[str | None] = [None] * SLOTS
    left = SLOTS
    for text in _strings():
        slot = slot_of(text)
        if found[slot] is None:
            found[slot] = text
            left -= 1
            if not left:
                break
    return tuple(t for t in found if t is not None)


def slot_tag(slot: int) -> str:
    """A short hash tag (at most 4 characters) whose keys live in ``slot``."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"slot {slot} is not a Redis Cluster slot (0-{SLOTS - 1})")
    return _tags()[slot]


def shard_slots(shard: int, shards: int) -> range:
    """The slots of background shard ``shard`` (0-based) of ``shards``."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}: shards must be 1 or more, 0 <= shard")
    return range(shard * SLOTS // shards, (shard + 1) * SLOTS // shards)


def shard_of_slot(slot: int, shards: int) -> int:
    """The background shard whose range holds ``slot``."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"slot {slot} is not a Redis Cluster slot (0-{SLOTS - 1})")
    if shards < 1:
        raise ValueError(f"{shards} shards: there must be 1 or more")
    shard = slot * shards // SLOTS
    # shard_slots rounds its bounds down: step forward when the slot is past this range
    while slot >= (shard + 1) * SLOTS // shards:
        shard += 1
    return shard
