"""Handlers of the map e2e tests: each records, in Redis, how many of its calls run at
once (per run), so a test can hold the engine to a map node's max_concurrency."""

from __future__ import annotations

import time
from typing import Any

import wfrunner
from wfrunner.context import NodeContext
from wfrunner.runtime import runtime

#: KEYS[1] calls running now, KEYS[2] the most seen at once
_ENTER = """
local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then
    redis.call('SET', KEYS[2], now)
end
return now
"""


def running_key(run_id: str) -> str:
    return f"test:map:{{{run_id}}}:running"


def peak_key(run_id: str) -> str:
    return f"test:map:{{{run_id}}}:peak"


@wfrunner.handler("t.map_slow")
def slow(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    """Sleeps ``config.sleep`` s; element 0 first waits (up to 30 s) until element 1 has
    finished, so an earlier element finishes later whatever the timing."""
    client = runtime().redis
    keys = [running_key(ctx.run_id), peak_key(ctx.run_id)]
    client.eval(_ENTER, 2, *keys)
    try:
        if ctx.item_index == 0:
            deadline = time.monotonic() + 30
            while not client.exists(done_key(ctx.run_id, 1)) and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(float(config.get("sleep", 0.1)))
    finally:
        client.decr(keys[0])
    client.set(done_key(ctx.run_id, int(ctx.item_index or 0)), 1)
    return {"value": value, "index": ctx.item_index}


def done_key(run_id: str, index: int) -> str:
    return f"test:map:{{{run_id}}}:done:{index}"


@wfrunner.handler("t.map_flaky")
def flaky(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    """Fails the first attempt of the element equal to config.fail_on (every attempt
    with config.always)."""
    if value == config.get("fail_on") and (config.get("always") or ctx.attempt == 1):
        raise ValueError(f"element {value} failed on attempt {ctx.attempt}")
    return value * 2


@wfrunner.handler("t.map_double")
def double(value: Any, config: dict[str, Any]) -> Any:
    return value * 2
