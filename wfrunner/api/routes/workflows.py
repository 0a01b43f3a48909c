"""``/workflows``: register a definition, list them, read one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from wfrunner.api.deps import DEFAULT_LIMIT, CursorQuery, LimitQuery, RuntimeDep
from wfrunner.api.models import WorkflowCreated, WorkflowDetail, WorkflowPage
from wfrunner.api.responses import errors
from wfrunner.compiler.source import parse_json
from wfrunner.errors import WorkflowError
from wfrunner.runtime import Runtime

router = APIRouter(prefix="/workflows", tags=["workflows"])

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A workflow definition (docs/dsl.md), or an object of named "
        "definitions with ?name= choosing one",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=errors(401, 503),
    openapi_extra=_BODY,
)
async def register_workflow(
    request: Request,
    rt: RuntimeDep,
    name: Annotated[
        str | None, Query(max_length=200, description="Which workflow of a collection")
    ] = None,
) -> WorkflowCreated:
    """Validate, compile and store a definition. The same definition always gets the same
    id; a changed one under a known name is its next version. An invalid one is a 422
    with one entry per problem, its ``loc`` naming the node or edge."""
    body = await request.body()
    return await run_in_threadpool(_register, body, name, rt)


def _register(body: bytes, name: str | None, rt: Runtime) -> WorkflowCreated:
    """Strict JSON (no NaN, no lone surrogates, bounded size) before the compiler sees it."""
    from wfrunner.client import prepare_workflow, store_workflow

    value = parse_json(body, "request body")
    if not isinstance(value, dict):
        raise WorkflowError("request body: not a workflow: expected a JSON object")
    prepared = prepare_workflow(
        value, name=name, handler_modules=rt.settings.handler_modules, chooser="?name="
    )
    stored = rt.store.get_workflow(store_workflow(prepared, rt))
    return WorkflowCreated(workflow_id=stored.id, name=stored.name, version=stored.version)


@router.get("", responses=errors(401, 503))
def list_workflows(
    rt: RuntimeDep,
    name: Annotated[str | None, Query(max_length=200, description="One name's versions")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> WorkflowPage:
    """Registered workflows, newest first (every version of each name)."""
    page = rt.store.list_workflows(name=name, limit=limit, cursor=cursor)
    return WorkflowPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/{workflow_id}", responses=errors(401, 404, 503))
def get_workflow(workflow_id: str, rt: RuntimeDep) -> WorkflowDetail:
    """A workflow's definition as registered and the IR it compiled to."""
    found = rt.store.get_workflow(workflow_id)
    return WorkflowDetail(
        workflow_id=found.id,
        name=found.name,
        version=found.version,
        created_at=found.created_at,
        definition=found.definition,
        ir=found.ir,
    )
