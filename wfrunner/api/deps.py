"""What a route asks FastAPI for: the process's runtime, and the list parameters every
list shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from wfrunner.runtime import Runtime
from wfrunner.store import DEFAULT_LIMIT, MAX_LIMIT


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (at most {MAX_LIMIT}).")
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=400, description="The `next_cursor` of the previous page."),
]

__all__ = ["DEFAULT_LIMIT", "CursorQuery", "LimitQuery", "RuntimeDep", "get_runtime"]
