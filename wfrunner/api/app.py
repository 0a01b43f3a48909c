"""The app factory: routes, the error mapping, and the bearer token when one is set."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from wfrunner import __version__
from wfrunner.api import errors
from wfrunner.api.auth import token_check
from wfrunner.api.routes import GUARDED, OPEN
from wfrunner.runtime import Runtime, runtime

DESCRIPTION = (
    "Register workflows, start and follow runs, retry dead letters. Every route but "
    "/healthz and /openapi.json needs `Authorization: Bearer $WFRUNNER_API_TOKEN` when "
    "the token is set (docs/api.md)."
)


def create_app(rt: Runtime | None = None) -> FastAPI:
    """The REST API on ``rt`` (default: the process's runtime, from WFRUNNER_* settings).

    Without ``WFRUNNER_API_TOKEN`` no route asks for a token: ``wfrunner serve`` then
    listens on loopback addresses only."""
    rt = rt or runtime()
    app = FastAPI(title="wfrunner", version=__version__, description=DESCRIPTION)
    app.state.runtime = rt
    errors.install(app)
    token = rt.settings.api_token
    guard = [Depends(token_check(token))] if token else []
    for router in GUARDED:
        app.include_router(router, dependencies=guard)
    for router in OPEN:
        app.include_router(router)
    return app
