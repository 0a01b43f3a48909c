"""``/dead-letters``: what ``wfrunner dlq`` shows and retries."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from wfrunner.api.deps import RuntimeDep
from wfrunner.api.models import DeadLetter, DeadLetterList, RetryAccepted
from wfrunner.api.responses import errors

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


class LetterStatus(StrEnum):
    OPEN = "open"
    RETRIED = "retried"
    ALL = "all"


@router.get("", responses=errors(401, 503))
def list_dead_letters(
    rt: RuntimeDep,
    letter_status: Annotated[LetterStatus, Query(alias="status")] = LetterStatus.OPEN,
) -> DeadLetterList:
    """Node messages whose attempts ran out, and poison messages no task could be made of."""
    from wfrunner.client import list_dead_letters

    wanted = None if letter_status is LetterStatus.ALL else letter_status.value
    letters = list_dead_letters(wanted, rt)
    return DeadLetterList(
        items=[DeadLetter.model_validate(d, from_attributes=True) for d in letters]
    )


@router.post(
    "/{letter_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 401, 404, 409, 503),
)
def retry_dead_letter(
    letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)], rt: RuntimeDep
) -> RetryAccepted:
    """Resume the FAILED run of a node letter: its token and those the failure cut short
    run again with fresh attempts. 409 when the run is not FAILED or the letter was
    retried already; 400 for a poison letter (it names no run)."""
    from wfrunner.client import retry_dead_letter

    return RetryAccepted(letter_id=letter_id, run_id=retry_dead_letter(letter_id, rt))
