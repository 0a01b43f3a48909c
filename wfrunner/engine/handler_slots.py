"""Handler limits: at most ``max_concurrency`` nodes of a handler run at once across the
fleet (a rate-limited API), however many workers and runs there are.

A delivery of a node whose handler has a limit takes a slot (``lua/take_handler_slot.lua``)
*before* it begins the token, so a delivery that must wait has not begun: it counts as no
attempt, takes no lease, and is put off (sent again after a short countdown) like a
delivery that finds the token's lease held. Its run records why the node waits
(``lua/note_waiting.lua``): the run document shows the node PENDING with ``waiting_for``.

A slot is a member of the handler's sorted set (``wfr:{h:<handler>}:slots``), its holder
the delivery's lease holder id, scored by its expiry on Redis's clock. The process's lease
heartbeat (:class:`wfrunner.engine.leases.LeaseKeeper`) renews it with the node's lease;
the delivery removes it once its node committed (or failed, or was put off for a retry).
A worker killed mid-node stops renewing: its slot expires after WFRUNNER_LEASE_SECONDS and
is free again, as the token's lease is. A redelivered message is a new delivery with a new
holder: it takes a slot of its own while the old one expires, never two at once for one
delivery.

Nodes of handlers without a limit never reach this module (:func:`cap` reads two dicts).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import redis
from redis.commands.core import Script

from wfrunner import handlers
from wfrunner.compiler.ir import IRNode
from wfrunner.engine import keys
from wfrunner.engine.keys import PREFIX
from wfrunner.engine.leases import LeaseKeeper
from wfrunner.engine.tokens import Token
from wfrunner.resources import lua_source

log = logging.getLogger(__name__)

#: what SCAN matches to find every handler whose limit was applied
MAX_PATTERN = f"{PREFIX}:{{h:*}}:max"

#: the longest a put-off delivery waits before it looks for a slot again (seconds); the
#: actual countdown is spread at random below it, so waiting deliveries do not all come
#: back at once
LOOK_AGAIN_MAX = 1.0


def handler_keys(name: str) -> list[str]:
    """The slots and limit keys of the handler (one hash tag)."""
    tag = f"{PREFIX}:{{h:{quote(name, safe='')}}}"
    return [f"{tag}:slots", f"{tag}:max"]


def name_of(key: str) -> str:
    start = key.index("{h:") + len("{h:")
    return unquote(key[start : key.index("}", start)])


def cap(node: IRNode, overrides: Mapping[str, int]) -> int | None:
    """The fleet-wide limit of the node's handler: WFRUNNER_HANDLER_CONCURRENCY's, else the
    one it was registered with; None for no limit (and for nodes without a handler)."""
    name = node.function_name
    if not name:
        return None
    return overrides.get(name) or handlers.max_concurrency(name)


def waiting_reason(name: str, busy: int, limit: int) -> str:
    """What the run document says of a node waiting for a slot."""
    return f"handler {name!r} slots ({busy} of {limit} busy)"


def look_again_in(first_expiry: float | None) -> float:
    """The countdown of a put-off delivery: soon (slots are freed when nodes commit, long
    before they expire), never later than the first slot's expiry, and spread."""
    ceiling = LOOK_AGAIN_MAX if first_expiry is None else min(LOOK_AGAIN_MAX, first_expiry)
    return max(0.05, ceiling) * random.uniform(0.5, 1.0)  # noqa: S311 (jitter)


@dataclass(frozen=True)
class Wait:
    """A delivery that found no free slot: why, and when to look again (None: its run is
    no longer running, so not at all)."""

    reason: str
    retry_in: float | None


class HandlerSlots:
    """The handler slots this process's deliveries hold, renewed with their leases."""

    def __init__(self, client: redis.Redis, leases: LeaseKeeper) -> None:
        self.client = client
        self.seconds = leases.lease_seconds
        self._take: Script = client.register_script(lua_source("take_handler_slot"))
        self._note: Script = client.register_script(lua_source("note_waiting"))
        #: holder -> handler name
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        leases.add_beat(self.renew)

    @contextmanager
    def hold(self, name: str, limit: int, token: Token, holder: str) -> Iterator[Wait | None]:
        """Take a slot of handler ``name`` for the delivery ``holder`` and keep it (renewed)
        while the block runs; the block gets None, or a :class:`Wait` when no slot was
        free (the delivery must not begin the node)."""
        taken, busy, first = self._take(keys=handler_keys(name), args=[holder, self.seconds, limit])
        if not int(taken):
            yield self._put_off(name, limit, int(busy), float(first) if first else None, token)
            return
        with self._lock:
            self._held[holder] = name
        try:
            yield None
        finally:
            with self._lock:
                self._held.pop(holder, None)
            try:
                self.client.zrem(handler_keys(name)[0], holder)
            except redis.RedisError as exc:  # it expires with the lease it shadows
                log.warning("slot of handler %r not released (%s): it expires", name, exc)

    def _put_off(self, name: str, limit: int, busy: int, first: float | None, token: Token) -> Wait:
        reason = waiting_reason(name, busy, limit)
        note = json.dumps({"for": reason, "since": time.time()})
        state = self._note(
            keys=[keys.meta_key(token.run_id), keys.waiting_key(token.run_id)],
            args=[token.to_node, note, time.time()],
        )
        if state != "running":
            return Wait(f"run is {state}", None)
        return Wait(f"waiting for {reason}: looking again soon", look_again_in(first))

    def renew(self, seconds: float) -> None:
        """Extend every slot this process holds (the lease heartbeat calls it); ZADD XX
        never brings back a slot that expired and was given to another delivery."""
        with self._lock:
            held = dict(self._held)
        if not held:
            return
        pipe = self.client.pipeline(transaction=False)
        now = self.client.time()
        till = now[0] + now[1] / 1_000_000 + seconds
        for holder, name in held.items():
            pipe.zadd(handler_keys(name)[0], {holder: till}, xx=True)
        pipe.execute()


@dataclass(frozen=True)
class HandlerUsage:
    name: str
    max_concurrency: int | None
    busy: int

    def to_dict(self) -> dict[str, Any]:
        return {"handler": self.name, "max_concurrency": self.max_concurrency, "busy": self.busy}


def usage(client: redis.Redis) -> list[HandlerUsage]:
    """Every handler with a limit that was used: its live slots now."""
    names = sorted({name_of(k) for k in client.scan_iter(match=MAX_PATTERN, count=500)})
    seconds, micros = client.time()
    now = seconds + micros / 1_000_000
    found = []
    for name in names:
        slots, limit = handler_keys(name)
        pipe = client.pipeline(transaction=False)
        pipe.zcount(slots, f"({now}", "+inf")
        pipe.get(limit)
        busy, max_ = pipe.execute()
        found.append(HandlerUsage(name, int(max_) if max_ else None, int(busy)))
    return found


def waiting_notes(client: redis.Redis, run_id: str) -> dict[str, dict[str, Any]]:
    """node id -> {"for": reason, "since": t}: why the run's nodes last waited for a slot."""
    raw = client.hgetall(keys.waiting_key(run_id))
    return {str(node): json.loads(text) for node, text in raw.items()}
