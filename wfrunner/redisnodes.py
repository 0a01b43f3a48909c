"""Which Redis processes hold the hot state, and which of them the reconciler has not
seen yet: how it tells that Redis restarted, or came back with older data.

Each master keeps, in a key of its own, the ``run_id`` (``INFO server``) of the process
the reconciler last validated runs on. A pass swaps in the current one (``SET ... GET``,
atomic: one pass does it) and compares:

- the same: nothing happened to that master;
- no key: the master is empty (restarted without data) or new to wfrunner; its runs have
  no hot state left and are rebuilt from PostgreSQL as lost ones;
- another process's id: the master came back with data of its own that may be an older
  prefix of what was lost: a snapshot (RDB, AOF) it restarted from, or, on a Redis Cluster,
  a replica promoted after its master failed (the key was replicated with the rest). Its
  live runs are rebuilt from PostgreSQL (see ``recovery._validate``).

One server keeps the key at :data:`wfrunner.engine.keys.SERVER_KEY`. On a cluster each
master keeps it under a hash tag of a slot it serves (``wfr:{server<n>}``, the first n whose
slot is the master's), so a failover is seen on the master it struck, and only the runs
whose slots that master serves are rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from wfrunner.engine import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """What a reconciler pass learned about the state's masters."""

    #: some master is new to the reconciler (restarted, promoted, or never seen)
    changed: bool = False
    #: masters (``host:port``) that came back with data of another process; "*": the
    #: one server
    restored: frozenset[str] = frozenset()
    client: redis.Redis | None = field(default=None, repr=False, compare=False)

    def restored_run(self, run_id: str) -> bool:
        """Whether ``run_id``'s hot state is on a master that came back with older data."""
        if not self.restored:
            return False
        if "*" in self.restored or not isinstance(self.client, RedisCluster):
            return True
        slot = key_slot(keys.meta_key(run_id).encode())
        return str(self.client.nodes_manager.get_node_from_slot(slot).name) in self.restored


def look(client: redis.Redis) -> Seen:
    """Record every master's current process as seen; what changed since the last pass.

    On a cluster the slot map is read afresh first: after a failover the client may still
    name the dead master, and the runs a promoted replica serves must be found on it in
    this pass, the one that swaps its identity key."""
    if isinstance(client, RedisCluster):
        client.nodes_manager.initialize()
    changed, restored = False, set()
    for name, node, key in _masters(client):
        current = str(node.info("server")["run_id"])
        stored = client.set(key, current, get=True)  # (on a cluster: sent to that master)
        if stored == current:
            continue
        log.warning(
            "Redis %s (process %s) is new to the reconciler: validating runs", name, current
        )
        changed = True
        if stored is not None:
            restored.add(name)
    return Seen(changed, frozenset(restored), client)


def scan_step(client: redis.Redis, cursors_key: str, match: str, count: int) -> list[str]:
    """One step of an incremental SCAN of every master, each resuming where the last step
    left it (the hash ``cursors_key``: master name -> cursor; a cluster's SCAN cursor is one
    master's, so one cursor cannot walk them all)."""
    cursors = client.hgetall(cursors_key)
    found: list[str] = []
    for name, node, _ in _masters(client):
        cursor, keys_ = node.scan(int(cursors.get(name) or 0), match=match, count=count)
        client.hset(cursors_key, name, cursor)
        found += [str(k) for k in keys_]
    return found


def identity_keys(client: redis.Redis) -> dict[str, str]:
    """Master name -> the key holding the process the reconciler last saw there."""
    return {name: key for name, _, key in _masters(client)}


def _masters(client: redis.Redis) -> Iterator[tuple[str, redis.Redis, str]]:
    """(name, a client of that master alone, its identity key) for each master."""
    if not isinstance(client, RedisCluster):
        yield "*", client, keys.SERVER_KEY
        return
    for primary in client.get_primaries():
        yield str(primary.name), client.get_redis_connection(primary), _key_on(client, primary.name)


def _key_on(client: RedisCluster, name: str) -> str:
    """The first ``wfr:{server<n>}`` whose slot the master ``name`` serves."""
    slots = client.nodes_manager
    for n in range(1 << 16):
        key = f"{keys.SERVER_KEY}:{{server{n}}}"
        if slots.get_node_from_slot(key_slot(key.encode())).name == name:
            return key
    raise RuntimeError(f"Redis Cluster master {name} serves no slot")
