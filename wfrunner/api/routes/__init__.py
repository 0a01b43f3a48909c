"""One router per resource; :data:`GUARDED` are those behind the bearer token.

A new resource (or a new action of one, such as a run's cancel) adds its routes to its
module's router, or its router here.
"""

from __future__ import annotations

from fastapi import APIRouter

from wfrunner.api.routes import (
    deadletters,
    diagnosis,
    events,
    health,
    limits,
    pausing,
    pictures,
    runs,
    schedules,
    workflows,
)

GUARDED: tuple[APIRouter, ...] = (
    workflows.router,
    runs.router,
    pausing.router,
    events.router,
    deadletters.router,
    pictures.router,
    limits.router,
    diagnosis.router,
    schedules.router,
)
OPEN: tuple[APIRouter, ...] = (health.router,)
