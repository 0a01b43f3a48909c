"""``/schedules``: the cron schedules ``wfrunner schedules`` lists, pauses and resumes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from wfrunner.api.deps import RuntimeDep
from wfrunner.api.responses import errors
from wfrunner.runtime import Runtime

router = APIRouter(prefix="/schedules", tags=["schedules"])

NamePath = Annotated[str, Path(max_length=200, description="The workflow's name")]


class ScheduleView(BaseModel):
    name: str
    workflow_id: str = Field(description="The latest version's id: the one each fire runs")
    version: int
    cron: str
    timezone: str
    overlap: str
    catch_up: str
    inputs: Any
    state: str = Field(description="active, paused (by an operator) or disabled (enabled: false)")
    next_fire_at: str | None
    last_fired_at: str = Field(description="The latest fire time dealt with")
    last_run_id: str | None
    last_run_status: str | None


class ScheduleList(BaseModel):
    items: list[ScheduleView]


@router.get("", responses=errors(401, 503))
def list_schedules(rt: RuntimeDep) -> ScheduleList:
    """Every schedule: its cron text, policies, state, next fire and last run."""
    from wfrunner.schedules.views import schedule_view

    views = [schedule_view(rt, record) for record in rt.store.list_schedules()]
    return ScheduleList(items=[ScheduleView(**v) for v in views])


@router.post("/{name}/pause", responses=errors(401, 404, 503))
def pause_schedule(name: NamePath, rt: RuntimeDep) -> ScheduleView:
    """Stop firing the schedule until it is resumed."""
    return _paused(rt, name, True)


@router.post("/{name}/resume", responses=errors(401, 404, 503))
def resume_schedule(name: NamePath, rt: RuntimeDep) -> ScheduleView:
    """Fire the schedule again, counting from now."""
    return _paused(rt, name, False)


def _paused(rt: Runtime, name: str, paused: bool) -> ScheduleView:
    from wfrunner.schedules.control import set_paused
    from wfrunner.schedules.views import schedule_view

    return ScheduleView(**schedule_view(rt, set_paused(rt, name, paused)))
