"""A map node's hot state: lua/map_commit.lua and the read of its gathered results.

Only map nodes' deliveries call these: a workflow without ``map_over`` never does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from wfrunner.engine import keys
from wfrunner.engine.runstate import Commit, RunState, _dump, _guarded, commit_reply
from wfrunner.engine.tokens import Token
from wfrunner.errors import CounterError
from wfrunner.resources import lua_source

START, ITEM = "start", "item"


def commit(
    state: RunState,
    token: Token,
    kind: str,
    instance: str,
    work: Mapping[str, Any],
    events: Sequence[dict[str, Any]],
    *,
    nonce: str,
    holder: str,
    epoch: str,
    now: float,
) -> Commit:
    """Commit a map node's head (``kind`` START) or one item (ITEM) at most once."""
    run_id = token.run_id
    script = state.client.register_script(lua_source("map_commit"))
    reply = _guarded(
        "map_commit",
        run_id,
        lambda: script(
            keys=[
                keys.meta_key(run_id),
                keys.counter_key(run_id),
                keys.applied_key(run_id),
                keys.payloads_key(run_id),
                keys.emits_key(run_id),
                keys.events_key(run_id),
                keys.pending_key(run_id),
                keys.running_key(run_id),
                keys.maps_key(run_id),
            ],
            args=[
                token.op_key("advance"),
                token.key,
                nonce,
                holder,
                epoch,
                now,
                state.flush_every,
                instance,
                kind,
                _dump(work),
                *map(_dump, events),
            ],
        ),
    )
    return commit_reply(reply)


def results(state: RunState, run_id: str, instance: str) -> list[Any]:
    """The ordered results of a map instance whose items are all done (two reads)."""
    client = state.client
    total = client.hget(keys.maps_key(run_id), f"{instance}#n")
    if total is None:
        raise CounterError(f"run {run_id!r}: map {instance!r} has no recorded items")
    fields = [f"{instance}|r|{i}" for i in range(int(total))]
    refs = cast(list[str | None], client.hmget(keys.maps_key(run_id), fields))
    found = [ref for ref in refs if ref is not None]
    if len(found) < len(refs):
        raise CounterError(f"run {run_id!r}: map {instance!r} finished with results missing")
    texts = cast(list[str | None], client.hmget(keys.payloads_key(run_id), found))
    if any(text is None for text in texts):
        raise CounterError(f"run {run_id!r}: map {instance!r} has result payloads missing")
    return [json.loads(text) for text in texts if text is not None]
