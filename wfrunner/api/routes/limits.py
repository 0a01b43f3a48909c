"""``/limits``: what ``wfrunner limits`` shows (docs/concurrency.md)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from wfrunner.api.deps import RuntimeDep
from wfrunner.api.responses import errors

router = APIRouter(prefix="/limits", tags=["limits"])


class WorkflowLimit(BaseModel):
    workflow: str = Field(description="The workflow's name (all its versions share the limit)")
    max_runs: int | None
    running: int
    queued: int
    running_runs: list[str]
    queued_runs: list[str] = Field(description="Oldest first: the next to start first")


class HandlerLimit(BaseModel):
    handler: str
    max_concurrency: int | None
    busy: int = Field(description="Slots held now, across all workers")


class Limits(BaseModel):
    workflows: list[WorkflowLimit]
    handlers: list[HandlerLimit]


@router.get("", responses=errors(401, 503))
def get_limits(rt: RuntimeDep) -> Limits:
    """Workflows with a run limit (runs running, queued, in order) and handlers with a
    limit (slots busy now)."""
    from wfrunner.waits import limits

    return Limits.model_validate(limits(rt))
