"""Bearer-token authentication: one shared token, ``WFRUNNER_API_TOKEN``.

The comparison takes the same time whatever the guess shares with the token
(:func:`hmac.compare_digest`), so response times do not leak it a character at a time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="The value of WFRUNNER_API_TOKEN.")


def token_check(token: str) -> Callable[..., None]:
    """A dependency refusing requests that do not carry ``token`` (401, as RFC 6750 asks)."""
    expected = token.encode()

    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = (credentials.credentials if credentials is not None else "").encode()
        if credentials is None or not hmac.compare_digest(given, expected):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
