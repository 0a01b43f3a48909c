"""``/runs``: start a run, list runs, read a run's document."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from wfrunner.api.deps import DEFAULT_LIMIT, CursorQuery, LimitQuery, RuntimeDep
from wfrunner.api.models import (
    Approval,
    ApprovalDecision,
    ApprovalList,
    CancelRequest,
    ChildRun,
    ChildRunList,
    RunAccepted,
    RunCreate,
    RunDocument,
    RunPage,
)
from wfrunner.api.responses import errors
from wfrunner.states import RunStatus

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=errors(401, 404, 503))
def start_run(body: RunCreate, rt: RuntimeDep) -> RunAccepted:
    """Record the run QUEUED (``GET /runs/{id}`` finds it at once) and send it to the
    workers; follow it with ``GET /runs/{id}`` or its event stream. Name the workflow by
    ``workflow_id``, or by ``workflow`` (a name: its latest version, or ``name@N``) with
    an optional ``version``; an unknown one is a 404 listing what exists."""
    from wfrunner.client import submit_run

    inputs = {} if body.inputs is None else body.inputs
    run_id = submit_run(body.reference(), inputs, rt, version=body.version)
    return RunAccepted(run_id=run_id, status=RunStatus.QUEUED)


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


@router.get("/{run_id}/children", responses=errors(401, 404, 503))
def list_children(run_id: str, rt: RuntimeDep) -> ChildRunList:
    """The child runs the run's subworkflow nodes started, oldest first, each with the
    node that started it; 404 for an unknown run."""
    from wfrunner.client import list_children

    return ChildRunList(
        items=[
            ChildRun(
                run_id=c.id,
                workflow_id=c.workflow_id,
                node=c.parent_node,
                status=c.status,
                error=c.error,
                created_at=c.created_at,
                completed_at=c.completed_at,
            )
            for c in list_children(run_id, rt)
        ]
    )


#: who an API call that names no one is recorded as (the token is shared)
API_CALLER = "api"


@router.post("/{run_id}/cancel", responses=errors(401, 404, 409, 503))
def cancel_run(run_id: str, rt: RuntimeDep, body: CancelRequest | None = None) -> RunDocument:
    """Cancel the run: no node starts again, running handlers' tasks are revoked (with
    terminate unless ``terminate`` is false), it ends CANCELLED with what it cut short.
    409 when it has ended already."""
    from wfrunner.control import cancel_run

    body = body or CancelRequest()
    doc = cancel_run(run_id, body.reason, by=body.by or API_CALLER, terminate=body.terminate, rt=rt)
    return RunDocument.model_validate(doc)


@router.post("/{run_id}/approvals/{node_id}", responses=errors(401, 404, 409, 503))
def decide_approval(
    run_id: str, node_id: str, body: ApprovalDecision, rt: RuntimeDep
) -> RunDocument:
    """Approve (the run goes on, the decision as the node's output) or reject (the run
    fails) a waiting human node. 409 when it is not waiting, was decided, or the run
    ended; 404 for a run without that human node."""
    from wfrunner.control import decide_approval

    doc = decide_approval(
        run_id,
        node_id,
        body.decision,
        comment=body.comment,
        by=body.by or API_CALLER,
        data=body.data,
        rt=rt,
    )
    return RunDocument.model_validate(doc)


@router.get("/{run_id}/approvals", responses=errors(401, 404, 503))
def list_approvals(run_id: str, rt: RuntimeDep) -> ApprovalList:
    """The run's approval requests in order, each with its decision once made."""
    from wfrunner.approvals import history

    made = [Approval.model_validate(a) for a in history(rt, run_id)]
    return ApprovalList(run_id=run_id, approvals=made)
