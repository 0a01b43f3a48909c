"""``/runs``: start a run, list runs, read a run's document."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from wfrunner.api.deps import DEFAULT_LIMIT, CursorQuery, LimitQuery, RuntimeDep
from wfrunner.api.models import RunAccepted, RunCreate, RunDocument, RunPage
from wfrunner.api.responses import errors
from wfrunner.states import RunStatus

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=errors(401, 404, 503))
def start_run(body: RunCreate, rt: RuntimeDep) -> RunAccepted:
    """Record the run QUEUED (``GET /runs/{id}`` finds it at once) and send it to the
    workers; follow it with ``GET /runs/{id}`` or its event stream."""
    from wfrunner.client import submit_run

    inputs = {} if body.inputs is None else body.inputs
    return RunAccepted(run_id=submit_run(body.workflow_id, inputs, rt), status=RunStatus.QUEUED)


@router.get("", responses=errors(401, 503))
def list_runs(
    rt: RuntimeDep,
    workflow_id: Annotated[str | None, Query(max_length=200)] = None,
    run_status: Annotated[
        list[RunStatus] | None,
        Query(alias="status", description="Repeat for several: ?status=FAILED&status=CANCELLED"),
    ] = None,
    since: Annotated[
        str | None,
        Query(max_length=64, description="Created since: ISO-8601, or an age (30m, 1h, 2d)"),
    ] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> RunPage:
    """Runs newest first, filtered by workflow, status and creation time."""
    from wfrunner.client import list_runs

    page = list_runs(workflow_id, run_status, since, limit, cursor, rt)
    return RunPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/{run_id}", responses=errors(401, 404, 503))
def get_run(run_id: str, rt: RuntimeDep) -> RunDocument:
    """The run document: status, every node's state and output, the path, the counts."""
    from wfrunner.client import get_run

    return RunDocument.model_validate(get_run(run_id, rt))
