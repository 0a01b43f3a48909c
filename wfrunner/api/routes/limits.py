"""``/limits``: what ``wfrunner limits`` shows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from wfrunner.api.deps import RuntimeDep
from wfrunner.api.responses import errors

router = APIRouter(prefix="/limits", tags=["limits"])


@router.get("", responses=errors(401, 503))
def get_limits(rt: RuntimeDep) -> dict[str, Any]:
    """Workflows with a run limit (runs running, queued, in order) and handlers with a
    limit (slots busy now)."""
    from wfrunner.waits import limits

    return limits(rt)
