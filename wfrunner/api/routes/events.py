"""``/runs/{id}/events``: a run's event log, by pages or as a live stream (SSE)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from wfrunner.api import stream
from wfrunner.api.deps import LimitQuery, RuntimeDep
from wfrunner.api.models import Event, EventPage
from wfrunner.api.responses import errors
from wfrunner.runtime import Runtime
from wfrunner.store import MAX_LIMIT

router = APIRouter(prefix="/runs/{run_id}/events", tags=["events"])

AfterQuery = Annotated[int, Query(ge=0, description="Only events numbered after this one")]
_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {stream.MEDIA_TYPE: {"schema": {"type": "string"}}}}
}


@router.get("", response_model=EventPage, responses={**errors(401, 404, 503), **_SSE})
async def list_events(
    run_id: str,
    request: Request,
    rt: RuntimeDep,
    after: AfterQuery = 0,
    limit: LimitQuery = MAX_LIMIT,
    accept: Annotated[str, Header()] = "application/json",
) -> EventPage | Response:
    """The run's events numbered from 1, those after ``after``; with ``Accept:
    text/event-stream``, the stream of ``/events/stream`` instead."""
    if stream.MEDIA_TYPE in accept:
        return await _stream(run_id, request, rt, after, None)
    return await run_in_threadpool(_page, run_id, after, limit, rt)


def _page(run_id: str, after: int, limit: int, rt: Runtime) -> EventPage:
    from wfrunner.client import events_after

    run, events = events_after(run_id, after, limit, rt)
    return EventPage(
        run_id=run_id,
        run_status=run.status,
        events=[Event.model_validate({"seq": seq, **event}) for seq, event in events],
        next_after=events[-1][0] if events else after,
    )


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={**errors(401, 404, 503), **_SSE},
)
async def stream_events(
    run_id: str,
    request: Request,
    rt: RuntimeDep,
    after: AfterQuery = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: each of the run's events (``id`` its number), following a live
    run until it ends, then ``event: end`` with its status. ``Last-Event-ID`` resumes."""
    return await _stream(run_id, request, rt, after, last_event_id)


async def _stream(
    run_id: str, request: Request, rt: Runtime, after: int, last_event_id: str | None
) -> StreamingResponse:
    await run_in_threadpool(rt.store.get_run, run_id)  # an unknown run is a 404, not a stream
    if last_event_id is not None and last_event_id.isdigit():
        after = max(after, int(last_event_id))
    return StreamingResponse(
        stream.follow(rt, run_id, after, request),
        media_type=stream.MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
