"""A run's events as server-sent events, following a live run until it ends.

Each event goes out as ``id: <seq>`` and ``data: <the event as JSON, with its seq>``; a
client that reconnects sends ``Last-Event-ID`` and resumes after it. When the run has
ended and every event is out, a final ``event: end`` carries its status and error, and
the stream closes.

Between reads the follower sleeps on the run's end channel (:class:`wfrunner.ended.Watch`),
so it wakes at once when the run ends, and otherwise reads the run's new events every
:data:`POLL_SECONDS`. The reads block (Redis, PostgreSQL), so they run in the thread pool,
one at a time per stream; a client that disconnects stops its stream at the next read.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from wfrunner.ended import Watch
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES

#: seconds between reads of a live run's new events
POLL_SECONDS = 0.5
#: seconds without an event after which a comment line keeps proxies from closing the stream
KEEPALIVE_SECONDS = 15.0
MEDIA_TYPE = "text/event-stream"


def _message(seq: int, event: dict[str, Any]) -> str:
    return f"id: {seq}\ndata: {json.dumps({'seq': seq, **event})}\n\n"


def _end(run_id: str, status: str, error: str | None) -> str:
    data = json.dumps({"run_id": run_id, "status": status, "error": error})
    return f"event: end\ndata: {data}\n\n"


async def follow(rt: Runtime, run_id: str, after: int, request: Request) -> AsyncIterator[str]:
    """The SSE text of the run's events after number ``after``, until the run ends."""
    from wfrunner.client import events_after

    watch = Watch(rt, run_id)
    await run_in_threadpool(watch.__enter__)
    try:
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            run, events = await run_in_threadpool(events_after, run_id, after, None, rt)
            for seq, event in events:
                yield _message(seq, event)
                after = seq
            if run.status in TERMINAL_RUN_STATES:  # its events were all read from PostgreSQL
                yield _end(run_id, run.status.value, run.error)
                return
            if events:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                quiet_since = time.monotonic()
            await run_in_threadpool(watch.wait, POLL_SECONDS)
    finally:
        await run_in_threadpool(watch.__exit__, None, None, None)
