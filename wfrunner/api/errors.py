"""The one mapping from wfrunner's errors to HTTP responses.

- :class:`NotFoundError` -> 404; :class:`StoreError` otherwise (PostgreSQL unreachable),
  a Redis connection error and :class:`ConfigurationError` (a configured server that did
  not answer when first reached, or a setting the server cannot use) -> 503: the server
  side is at fault, not the request;
- :class:`ConflictError` -> 409 (the run's state does not allow the request);
- :class:`WorkflowError` (and :class:`CompileError`, one entry per problem, naming its
  node or edge), :class:`PayloadError`, :class:`ConditionError`, :class:`QueryError` ->
  422, with FastAPI's validation body: ``{"detail": [{"loc": [...], "msg": ..., "type":
  ...}]}``;
- any other :class:`WfrunnerError` -> 400.

Routes raise; none of them builds an error response itself.
"""

from __future__ import annotations

import logging
import re

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from wfrunner.errors import (
    CompileError,
    ConditionError,
    ConfigurationError,
    ConflictError,
    GraphvizError,
    NotFoundError,
    PayloadError,
    QueryError,
    StoreError,
    WfrunnerError,
    WorkflowError,
)

log = logging.getLogger(__name__)

#: where a compile problem is: "node 'a': ...", "loop 'e': ...", "edge a->b: ..."
_WHERE = re.compile(r"^(?:(?:node|loop) '(?P<node>[^']*)'|edge (?P<edge>\S+->\S+?))[.:]")
UNPROCESSABLE = (WorkflowError, PayloadError, ConditionError, QueryError)


def problem_location(problem: str) -> list[str]:
    """The ``loc`` of one compile problem: the node or edge it names, else the body."""
    found = _WHERE.match(problem)
    if found is None:
        return ["body"]
    if found["node"] is not None:
        return ["body", "nodes", found["node"]]
    return ["body", "edges", found["edge"]]


def _unprocessable(exc: WfrunnerError) -> list[dict[str, object]]:
    if isinstance(exc, CompileError):
        return [
            {"loc": problem_location(p), "msg": p, "type": "workflow_problem"} for p in exc.problems
        ]
    if isinstance(exc, QueryError):
        return [{"loc": ["query", exc.field or "?"], "msg": str(exc), "type": "query"}]
    kind = "workflow" if isinstance(exc, WorkflowError) else type(exc).__name__.lower()
    return [{"loc": ["body"], "msg": str(exc), "type": kind}]


async def _wfrunner_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WfrunnerError)
    if isinstance(exc, NotFoundError):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    if isinstance(exc, StoreError):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"PostgreSQL: {exc}"}, status_code=503)
    if isinstance(exc, ConfigurationError):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)
    if isinstance(exc, ConflictError):
        return JSONResponse({"detail": str(exc)}, status_code=409)
    if isinstance(exc, GraphvizError):  # the API's host lacks Graphviz: not the client's fault
        return JSONResponse({"detail": str(exc)}, status_code=503)
    if isinstance(exc, UNPROCESSABLE):
        return JSONResponse({"detail": _unprocessable(exc)}, status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: Redis: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": f"Redis is unreachable: {exc}"}, status_code=503)


def install(app: FastAPI) -> None:
    app.add_exception_handler(WfrunnerError, _wfrunner_error)
    app.add_exception_handler(redis.ConnectionError, _redis_down)
    app.add_exception_handler(redis.TimeoutError, _redis_down)
