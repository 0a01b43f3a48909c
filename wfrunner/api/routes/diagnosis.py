"""``/diagnosis`` and ``/runs/{id}/diagnosis|repair``: what ``wfrunner doctor`` shows and
does (docs/operating.md, "Stuck runs")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from wfrunner.api.deps import RuntimeDep
from wfrunner.api.responses import errors

router = APIRouter(tags=["diagnosis"])


class Finding(BaseModel):
    kind: str = Field(description="lost_message, dead_worker, waiting_join, idle, ...")
    stuck: bool = Field(description="Whether this alone keeps the run from progressing")
    node: str | None
    summary: str
    action: str | None = Field(description="The repair it calls for (requeue, rebuild, ...)")
    details: dict[str, Any]


class Diagnosis(BaseModel):
    run_id: str
    workflow_id: str
    workflow: str
    status: str
    stuck: bool
    age_seconds: float
    idle_seconds: float
    suggested_action: str | None
    fails_at: float | None = Field(description="When the timeout detector fails it (epoch s)")
    findings: list[Finding]
    notes: list[str]


class DiagnosisList(BaseModel):
    runs: list[Diagnosis]
    stuck: int


class RepairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["requeue", "rebuild", "fail", "cancel"]
    reason: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200)


class RepairDone(BaseModel):
    run_id: str
    action: str
    summary: str
    tokens: list[str]
    status: str


#: who an API call that names no one is recorded as
API_CALLER = "api"


@router.get("/diagnosis", responses=errors(401, 503))
def list_diagnoses(
    rt: RuntimeDep,
    include_all: Annotated[
        bool, Query(alias="all", description="Every RUNNING/WAITING run, not only stuck ones")
    ] = False,
    older_than: Annotated[
        float | None, Query(ge=0, description="Only runs idle for at least this many seconds")
    ] = None,
) -> DiagnosisList:
    """The stuck runs, each with why and the repair it calls for."""
    from wfrunner.doctor.run import diagnose_runs

    found = diagnose_runs(stuck_only=not include_all, older_than=older_than, rt=rt)
    return DiagnosisList(
        runs=[Diagnosis.model_validate(d.to_dict()) for d in found],
        stuck=sum(1 for d in found if d.stuck),
    )


@router.get("/runs/{run_id}/diagnosis", responses=errors(401, 404, 503))
def get_diagnosis(run_id: str, rt: RuntimeDep) -> Diagnosis:
    """Why the run is (or is not) stuck; read-only."""
    from wfrunner.doctor.run import diagnose

    return Diagnosis.model_validate(diagnose(run_id, rt).to_dict())


@router.post("/runs/{run_id}/repair", responses=errors(401, 404, 409, 503))
def repair_run(run_id: str, body: RepairRequest, rt: RuntimeDep) -> RepairDone:
    """Repair a stuck run: ``requeue`` its stalled tokens, ``rebuild`` its hot state from
    PostgreSQL, ``fail`` or ``cancel`` it. 409 when it has ended."""
    from wfrunner.doctor.run import repair

    done = repair(run_id, body.action, reason=body.reason, by=body.by or API_CALLER, rt=rt)
    return RepairDone.model_validate(done.to_dict())
