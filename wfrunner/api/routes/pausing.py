"""``/runs/{id}/pause``, ``/resume``, ``/rerun``: stopping a run for a while, and running
an ended one again (see wfrunner/pausing.py and wfrunner/redrive.py)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from wfrunner.api.deps import RuntimeDep
from wfrunner.api.models import RunDocument
from wfrunner.api.responses import errors

router = APIRouter(prefix="/runs", tags=["runs"])

#: who an API call that names no one is recorded as (the token is shared)
API_CALLER = "api"


class PauseRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200, description="Default: api")


class ResumeRequest(BaseModel):
    by: str | None = Field(default=None, max_length=200, description="Default: api")


class RerunRequest(BaseModel):
    from_node: str | None = Field(
        default=None,
        max_length=200,
        alias="from",
        description="Run this completed node and everything downstream of it again too",
    )
    reason: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200, description="Default: api")


@router.post("/{run_id}/pause", responses=errors(401, 404, 409, 503))
def pause_run(run_id: str, rt: RuntimeDep, body: PauseRequest | None = None) -> RunDocument:
    """Pause the run: no node of it starts until it is resumed; running nodes finish and
    commit. 409 when it has ended, is paused already, or has not started."""
    from wfrunner.control import pause_run

    body = body or PauseRequest()
    doc = pause_run(run_id, body.reason, by=body.by or API_CALLER, rt=rt)
    return RunDocument.model_validate(doc)


@router.post("/{run_id}/resume", responses=errors(401, 404, 409, 503))
def resume_run(run_id: str, rt: RuntimeDep, body: ResumeRequest | None = None) -> RunDocument:
    """Resume a paused run where it stopped. 409 when it is not paused."""
    from wfrunner.control import resume_run

    body = body or ResumeRequest()
    return RunDocument.model_validate(resume_run(run_id, by=body.by or API_CALLER, rt=rt))


@router.post("/{run_id}/rerun", responses=errors(401, 404, 409, 503))
def rerun(run_id: str, rt: RuntimeDep, body: RerunRequest | None = None) -> RunDocument:
    """Rerun a FAILED or CANCELLED run as a new attempt of it: its failed nodes run again,
    completed ones keep their outputs (``from``: that node and its downstream run again
    too). 409 for a run that did not fail or a ``from`` node that cannot be rerun from;
    404 for an unknown run or node."""
    from wfrunner.control import rerun

    body = body or RerunRequest()
    doc = rerun(run_id, body.from_node, reason=body.reason, by=body.by or API_CALLER, rt=rt)
    return RunDocument.model_validate(doc)
