"""``/healthz``: whether both servers answer; open, for load balancers and probes."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from wfrunner import redisclient
from wfrunner.api.deps import RuntimeDep
from wfrunner.api.models import Health
from wfrunner.errors import ConfigurationError, StoreError
from wfrunner.runtime import Runtime

router = APIRouter(tags=["health"])

#: seconds a probe waits for each server
PROBE_TIMEOUT = 2.0


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A server is down"}},
)
async def healthz(rt: RuntimeDep) -> Health | Response:
    """200 when Redis and PostgreSQL answer; 503 naming the one that does not."""
    health = Health(
        redis=await run_in_threadpool(_redis, rt), postgres=await run_in_threadpool(_postgres, rt)
    )
    if health.redis == "ok" and health.postgres == "ok":
        return health
    return JSONResponse(health.model_dump(), status_code=503)


def _redis(rt: Runtime) -> str:
    """A client of its own: the runtime's retries a lost connection for seconds."""
    try:
        url = rt.redis_url  # resolved (and checked) once, on the first request
    except ConfigurationError as exc:
        return f"down: {exc}"
    client = redisclient.connect(
        url, retry=False, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"down: {exc}"
    finally:
        client.close()
    return "ok"


def _postgres(rt: Runtime) -> str:
    try:
        rt.store.ping()
    except (StoreError, ConfigurationError) as exc:
        return f"down: {exc}"
    return "ok"
