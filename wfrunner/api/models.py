"""Request and response bodies of the REST API, as pydantic models (they make the OpenAPI
schema at ``/openapi.json``). Times are ISO-8601 with their zone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wfrunner.states import RunStatus
from wfrunner.store import RunSummary, WorkflowSummary


class WorkflowCreated(BaseModel):
    workflow_id: str
    name: str
    version: int = Field(description="1 for a new name; one more for each changed definition")


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last")


class WorkflowDetail(BaseModel):
    workflow_id: str
    name: str
    version: int
    created_at: datetime
    definition: dict[str, Any] = Field(description="The definition as registered")
    ir: dict[str, Any] = Field(description="The compiled workflow the engine runs")


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="The workflow's id"
    )
    workflow: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Instead of workflow_id: a name (its latest version) or name@N",
    )
    version: int | None = Field(default=None, ge=1, description="With workflow: which version")
    inputs: Any = Field(default=None, description="The run's inputs (any JSON; default {})")

    @model_validator(mode="after")
    def _one_workflow(self) -> RunCreate:
        if (self.workflow_id is None) == (self.workflow is None):
            raise ValueError("give workflow_id, or workflow (a name, or name@N), not both")
        if self.version is not None and self.workflow is None:
            raise ValueError("version goes with workflow (a name), not with workflow_id")
        return self

    def reference(self) -> str:
        """What names the workflow: its id, or its name (with @N)."""
        return self.workflow_id if self.workflow_id is not None else str(self.workflow)


class RunAccepted(BaseModel):
    run_id: str
    status: RunStatus


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last")


class NodeState(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    attempts: int
    iterations: int
    output: Any = None


class RunDocument(BaseModel):
    """The run document (docs/run-document.md), as ``wfrunner status --json`` prints it."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    workflow_id: str
    workflow_name: str
    workflow_version: int
    status: RunStatus
    error: str | None
    inputs: Any
    nodes: dict[str, NodeState]
    path: list[dict[str, Any]]
    stats: dict[str, int]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class ChildRun(BaseModel):
    """A run a subworkflow node started (docs/subworkflows.md)."""

    run_id: str
    workflow_id: str
    node: str | None
    status: RunStatus
    error: str | None
    created_at: datetime
    completed_at: datetime | None


class ChildRunList(BaseModel):
    items: list[ChildRun]


class CancelRequest(BaseModel):
    """Why and by whom; ``terminate: false`` lets running handlers finish (their results
    are refused)."""

    reason: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200, description="Default: api")
    terminate: bool = True


class ApprovalDecision(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200, description="Default: api")
    data: Any = Field(default=None, description="JSON the node's output carries (approve)")


class Approval(BaseModel):
    """A human node's request, with its decision once made."""

    node: str
    scope: str = Field(description="The loop passes it waits in ('' outside loops)")
    requested_at: float
    deadline: float | None
    prompt: str | None = None
    decision: dict[str, Any] | None = Field(
        description="{decision, by, comment, data, at}; null while it waits"
    )


class ApprovalList(BaseModel):
    run_id: str
    approvals: list[Approval]


class Event(BaseModel):
    """One entry of a run's event log: ``seq`` (from 1), ``type``, ``node`` and the
    event's own fields (``t``, ``to``, ``error``, ... as ``wfrunner trace --json``)."""

    model_config = ConfigDict(extra="allow")

    seq: int
    type: str
    node: str | None = None


class EventPage(BaseModel):
    run_id: str
    run_status: RunStatus
    events: list[Event]
    next_after: int = Field(description="Pass as ?after= for the events that follow")


class DeadLetter(BaseModel):
    id: int
    kind: str = Field(description='"node" (retryable) or "poison" (no run to resume)')
    status: str = Field(description='"open" or "retried"')
    run_id: str | None
    node_id: str | None
    attempts: int | None
    error: str
    queue: str | None
    raw: str | None
    created_at: datetime
    retried_at: datetime | None


class DeadLetterList(BaseModel):
    items: list[DeadLetter]


class RetryAccepted(BaseModel):
    letter_id: int
    run_id: str


class Health(BaseModel):
    redis: str = Field(description='"ok", or why it does not answer')
    postgres: str = Field(description='"ok", or why it does not answer')


class Problem(BaseModel):
    detail: str
