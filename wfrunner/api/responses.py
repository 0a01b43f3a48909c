"""The error responses routes declare, so ``/openapi.json`` documents each body."""

from __future__ import annotations

from typing import Any

from wfrunner.api.models import Problem

_DESCRIPTIONS = {
    400: "The request cannot be carried out",
    401: "No bearer token, or not the right one",
    404: "No such workflow, run or dead letter",
    409: "The run's state does not allow the request",
    503: "PostgreSQL or Redis does not answer",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer these codes (422 FastAPI adds itself)."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in codes}
